"""Build tiny random checkpoints of the real architectures, offline, in about a second.

Widths and depths are shrunk; the geometry is kept (SAM image 1024, patch 16, 768 tiles for DeepSeek-OCR-2,
640 tiles for v1), so preprocessing and image-token counts run exactly as with the real checkpoints.
Random weights produce random text: use these for plumbing, shapes, batching and protocols, not OCR quality.

    python -m predictor.testing.tiny --family v2 OUT_DIR
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from predictor.testing.tokenizer import BOS, EOS, IMAGE, PAD, build_tokenizer


def v2_config(tokenizer: Any, **text: Any) -> Any:
    """The tiny ``DeepseekOcr2Config``; ``text`` overrides text-model sizes (the fitted checkpoints use wider ones)."""
    from transformers import DeepseekOcr2Config

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (BOS, EOS, PAD, IMAGE)}
    return DeepseekOcr2Config(
        image_token_id=ids[IMAGE],
        vision_config={
            # image_size/patch_size stay real: the model picks its query table (144 or 256 queries) from the
            # SAM grid, and the processor counts 256 + 144 * crops + 1 placeholders the same way.
            "sam_config": {
                "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_dim": 64,
                "output_channels": 16, "downsample_channels": [32, 64],
                "image_size": 1024, "patch_size": 16, "window_size": 14, "global_attn_indexes": [1],
            },
            # hidden_size must equal sam_config.downsample_channels[-1].
            "encoder_config": {
                "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024,
            },
        },
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "mlp_layer_types": ["dense", "sparse"],
            "num_attention_heads": 4, "num_key_value_heads": 4,
            "n_routed_experts": 8, "num_experts_per_tok": 2, "n_shared_experts": 1, "moe_intermediate_size": 32,
            "topk_method": "greedy", "max_position_embeddings": 8192,
            "bos_token_id": ids[BOS], "eos_token_id": ids[EOS], "pad_token_id": ids[PAD], **text,
        },
    )


def build_v2(out_dir: str, seed: int = 0) -> str:
    """A tiny native DeepSeek-OCR-2 (``model_type: deepseek_ocr2``) with processor and tokenizer."""
    import torch

    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    config = v2_config(tokenizer)
    model = v2_model(config)
    save_v2(model, tokenizer, out_dir)
    return out_dir


def v2_model(config: Any) -> Any:
    from transformers import DeepseekOcr2ForConditionalGeneration

    model = DeepseekOcr2ForConditionalGeneration(config).eval()
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.generation_config, key, getattr(config.text_config, key))
    return model


def save_v2(model: Any, tokenizer: Any, out_dir: str) -> None:
    """Weights, config and the processor (PIL image processor + tokenizer): what ``--model_dir`` loads."""
    from transformers import DeepseekOcr2ImageProcessorPil, DeepseekOcr2Processor

    processor = DeepseekOcr2Processor(image_processor=DeepseekOcr2ImageProcessorPil(), tokenizer=tokenizer)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)


def build(out_dir: str, family: str = "v2") -> str:
    os.makedirs(out_dir, exist_ok=True)
    if family == "v2":
        return build_v2(out_dir)
    if family == "v1":
        from predictor.testing.tiny_v1 import build_v1

        return build_v1(out_dir)
    raise ValueError(f"unknown family {family!r}; expected v1 or v2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=("v1", "v2"), default="v2")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    print(build(args.out_dir, args.family))


if __name__ == "__main__":
    main()
