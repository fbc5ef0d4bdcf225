"""DeepSeek-OCR's facts, in one place for the server, the engine, the families and the batch client.

Torch-free and import-free (the batch client imports it without torch). Where a value is DeepSeek's own, it is
the one its official scripts use; changing one here changes every place that relies on it.
"""

from __future__ import annotations

import threading

# Between the pages of a multi-page result: DeepSeek's PDF script joins pages with it.
PAGE_SEPARATOR = "\n\n<--- Page Split --->\n\n"
# DeepSeek's PDF script renders pages at 144 DPI (the server for PDFs it receives, the client for PDFs it reads).
PDF_DPI = 144
# Repetition guard (ngram_size, window): DeepSeek's image script uses 30/90 (our --ngram_size/--ngram_window
# default); its PDF script uses 20/50 ("window for fast"), the default for PDF pages.
IMAGE_NGRAM = (30, 90)
PDF_NGRAM = (20, 50)
# The largest guard a request or a flag may ask for (the guard's cost grows with both).
MAX_NGRAM_SIZE = 200
MAX_NGRAM_WINDOW = 4096
# Table cell tags legitimately repeat: the repetition guard never bans them.
TABLE_TOKENS = ("<td>", "</td>")

# The official prompts, without the trailing space some README examples carry (DeepSeek's infer() strips it).
TASK_PROMPTS: dict[str, str] = {
    "ocr": "Free OCR.",
    "markdown": "<|grounding|>Convert the document to markdown.",
    "grounding": "<|grounding|>OCR this image.",
    "figure": "Parse the figure.",
    "describe": "Describe this image in detail.",
    "locate": "Locate <|ref|>{ref}<|/ref|> in the image.",
}
TASKS = tuple(TASK_PROMPTS)
DEFAULT_TASK = "ocr"
TASKS_WITHOUT_REF = tuple(name for name, prompt in TASK_PROMPTS.items() if "{ref}" not in prompt)

# Where a model runs (--device): "auto" picks cuda when a GPU is visible; "cuda:N" names one GPU.
DEVICES = ("auto", "cpu", "cuda")
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"

# Resolution modes per family; the first is the family's default.
V1_MODES = ("gundam", "tiny", "small", "base", "large")
V2_MODES = ("dynamic", "global")  # dynamic: global view + tiles (DeepSeek's only mode); global: the view alone

# pdfium is not thread-safe (pypdfium2 documents it) and PDFs are opened in worker threads by the server and by the
# in-process batch client, possibly in one process: one lock serialises every pdfium call of the process.
PDFIUM_LOCK = threading.Lock()
