"""Everything a loaded model needs at serving time, built in one place: checkpoint -> family -> engine -> service."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from predictor.config import Settings
from predictor.engine.engine import Engine
from predictor.errors import LoadError
from predictor.families.base import LoadSettings, ModelFamily
from predictor.hardware import Hardware, disable_compile, resolve
from predictor.service import OcrService

log = logging.getLogger(__name__)

SUPPORTED = ("deepseek-ai/DeepSeek-OCR (v1 layout, model_type DeepseekOCR)",
             "deepseek-community/DeepSeek-OCR-2 (model_type deepseek_ocr2)",
             "deepseek-ai/DeepSeek-OCR-2 (original layout)")


@dataclass
class Runtime:
    settings: Settings
    hardware: Hardware
    family: ModelFamily
    engine: Engine
    service: OcrService


def family_classes() -> list[type[ModelFamily]]:
    from predictor.families.ocr1 import DeepseekOcrV1Family
    from predictor.families.ocr2 import DeepseekOcr2Family

    return [DeepseekOcr2Family, DeepseekOcrV1Family]


def detect_family(path: str) -> type[ModelFamily]:
    config_path = os.path.join(path, "config.json")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read {config_path}: {exc}") from exc
    for cls in family_classes():
        if cls.matches(config):
            return cls
    raise LoadError(f"unsupported checkpoint at {path} (model_type={config.get('model_type')!r}, "
                    f"architectures={config.get('architectures')}); supported: {'; '.join(SUPPORTED)}")


def resolve_checkpoint(settings: Settings) -> str:
    """A local directory: --model_dir as is, or --model_id downloaded (or found in the HF cache)."""
    if settings.model_dir:
        return settings.model_dir
    from huggingface_hub import snapshot_download

    repo = settings.model_source
    try:
        return snapshot_download(repo, revision=settings.revision)
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types; all mean the same to the user
        raise LoadError(
            f"cannot download {repo} from the HuggingFace hub ({type(exc).__name__}: {exc}). "
            "Check network access and HF_TOKEN, pre-download it and pass --model_dir DIR, "
            "or run `make demo` for the offline tiny model."
        ) from exc


def load_runtime(settings: Settings) -> Runtime:
    """Checkpoint -> family -> started engine, blocking. Nothing on this path may reach torch.compile."""
    disable_compile()
    hardware = resolve(settings)
    log.info("hardware: %s", hardware.description)
    path = resolve_checkpoint(settings)
    family = detect_family(path)()
    log.info("loading %s from %s", family.name, path)
    family.load(path, LoadSettings(hardware.device, hardware.dtype, hardware.attn_implementation,
                                   hardware.experts_implementation))
    engine = Engine(family, hardware.device, max_batch_size=settings.max_batch_size,
                    max_batch_tokens=settings.max_batch_tokens, max_queue=settings.max_queue,
                    request_timeout=settings.request_timeout, max_prefill_batch=hardware.max_prefill_batch)
    engine.start()
    return Runtime(settings, hardware, family, engine, OcrService(settings, family, engine))
