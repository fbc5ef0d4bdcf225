"""A DeepSeek-style markdown grounding page as the model writes it (labels, box syntax, "  \\n\\n" block ends,
an image group without content followed by its caption, one-line HTML table, \\( \\) and \\[ \\] math), and
malformed variants, for the post-processing tests."""

PAGE = (
    "<|ref|>title<|/ref|><|det|>[[118, 62, 880, 103]]<|/det|>\n# DeepSeek-OCR: Contexts Optical Compression  \n\n"
    "<|ref|>text<|/ref|><|det|>[[118, 120, 880, 200]]<|/det|>\nWe define the ratio "
    "\\(r \\coloneqq n_{t} / n_{v}\\) of text to vision tokens.  \n\n"
    "<|ref|>image<|/ref|><|det|>[[150, 215, 850, 520]]<|/det|>\n"
    "<|ref|>image_caption<|/ref|><|det|>[[200, 528, 800, 552]]<|/det|>\n"
    "<center>Figure 1 | Compression on Fox.</center>  \n\n"
    "<|ref|>table_caption<|/ref|><|det|>[[300, 575, 700, 595]]<|/det|>\nTable 1 | Results  \n\n"
    "<|ref|>table<|/ref|><|det|>[[150, 600, 850, 760]]<|/det|>\n"
    "<table><tr><td>Tokens</td><td>Precision</td></tr><tr><td>64</td><td>96.5%</td></tr></table>  \n\n"
    "<|ref|>equation<|/ref|><|det|>[[300, 780, 700, 830]]<|/det|>\n\\[ y \\eqqcolon f(x) \\]"
)
IMAGE_BLOCK, CAPTION_BLOCK, TABLE_CAPTION_BLOCK, TABLE_BLOCK = 2, 3, 4, 5

COLSPAN_TABLE = ("<|ref|>table<|/ref|><|det|>[[100, 100, 900, 300]]<|/det|>\n"
                 "<table><tr><td colspan=\"2\">Model</td></tr><tr><td>a</td><td>b</td></tr></table>  \n\n"
                 "<|ref|>table<|/ref|><|det|>[[100, 400, 900, 600]]<|/det|>\n"
                 "<table><tr><td>x</td><td>y</td></tr><tr><td>1</td><td>2</td></tr></table>")
ODD_BOXES = ("<|ref|>image<|/ref|><|det|>[[-50, 100, 1200, 400]]<|/det|>\n"  # outside 0-999: clamped
             "<|ref|>image<|/ref|><|det|>[[1000, 1000, 1200, 1300]]<|/det|>\n"  # all past 999: zero area
             "<|ref|>image<|/ref|><|det|>[[800, 500, 200, 300]]<|/det|>\n"  # inverted
             "<|ref|>image<|/ref|><|det|>[[10, 10, 10, 500]]<|/det|>\n"  # zero width
             "<|ref|>image<|/ref|><|det|>[[0, 600, 400, 700], [500, 600, 999, 999]]<|/det|>\nafter")
MALFORMED = ("Intro <|ref|>image<|/ref|><|det|>[[1, 2, 3]]<|/det|>\n"  # three numbers: stays text
             "<|ref|>image<|/ref|><|det|>[[100, 100, 300, 300]]\n"  # det never closed
             "tail")
NESTED_MATH = "Where \\[ x = \\text{if } \\( a \\( b \\) \\) \\] and \\(c\\) but \\\\(d) and \\( open"
