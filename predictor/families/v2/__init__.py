"""DeepSeek-OCR-2: the native family and the translation of the original hub layout's config."""

from predictor.families.v2.family import DeepseekOcr2Family

__all__ = ["DeepseekOcr2Family"]
