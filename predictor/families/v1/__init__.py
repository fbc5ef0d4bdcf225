"""DeepSeek-OCR v1: config translation, PIL preprocessing and the family served by transformers' UnlimitedOcr."""

from predictor.families.v1.family import DeepseekOcrV1Family

__all__ = ["DeepseekOcrV1Family"]
