"""A tiny byte-level BPE tokenizer with DeepSeek-OCR's special tokens, trained offline in milliseconds."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD, IMAGE = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>", "<image>"
# Grounding tags and the table tags that DeepSeek's n-gram guard whitelists; real ids differ (128815...),
# so code must always look them up through the tokenizer.
EXTRA = ["<|grounding|>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<td>", "</td>", "<tr>", "</tr>"]
VOCAB = 512

_CORPUS = [
    "Free OCR.", "Convert the document to markdown.", "OCR this image.", "Parse the figure.",
    "Describe this image in detail.", "Locate the title in the image.", "The quick brown fox jumps over the lazy dog.",
    "| a | b |\n| 1 | 2 |", "# Heading\n\n- item 1\n- item 2", "Invoice total: 1,234.56 EUR",
]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE (any UTF-8 text round-trips); BOS is prepended like DeepSeek's LLaMA-style tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=[BOS, EOS, PAD, IMAGE, *EXTRA],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 20, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    # Left padding is what decoder-only batched generation needs.
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, padding_side="left",
        additional_special_tokens=[IMAGE, *EXTRA],
    )
