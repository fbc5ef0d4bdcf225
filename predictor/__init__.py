"""KServe custom predictor for the DeepSeek-OCR family, on HuggingFace Transformers (no vLLM, no Triton)."""

__version__ = "0.1.0"
