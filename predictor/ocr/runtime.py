"""Everything a loaded model needs at serving time, built in one place: checkpoint -> family -> engine -> service."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from predictor.config import Settings
from predictor.engine import experts, sdpa
from predictor.engine.config import EngineConfig
from predictor.engine.engine import Engine
from predictor.errors import LoadError
from predictor.families.base import LoadSettings, ModelFamily, read_config
from predictor.ocr.hardware import Hardware, choose_hardware, disable_compile
from predictor.ocr.resolve import check_default_mode
from predictor.ocr.service import OcrService

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
    experts_plan: experts.Plan | None = None  # the MoE experts implementation chosen per phase (CUDA)


def family_classes() -> list[type[ModelFamily]]:
    from predictor.families.v1 import DeepseekOcrV1Family
    from predictor.families.v2 import DeepseekOcr2Family

    return [DeepseekOcr2Family, DeepseekOcrV1Family]


def detect_family(path: str, config: dict[str, Any] | None = None) -> type[ModelFamily]:
    """The family of the checkpoint at ``path`` from its parsed ``config.json`` (read when not given)."""
    config = read_config(path) if config is None else config
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
    hardware = choose_hardware(settings)
    log.info("hardware: %s", hardware.description)
    log.info("attention: %s", sdpa.apply(settings.sdpa_cudnn, hardware.device, hardware.dtype))
    path = resolve_checkpoint(settings)
    config = read_config(path)
    family_class = detect_family(path, config)
    check_default_mode(settings, family_class)
    family = family_class()
    log.info("loading %s from %s", family.name, path)
    family.load(path, LoadSettings(hardware.device, hardware.dtype, hardware.attn_implementation,
                                   hardware.experts_implementation), config)
    # model surgery belongs to loading: measured once on the device, before the engine runs a forward
    plan = (experts.probe_and_install(family.model, decode_mask=family.decode_mask)
            if hardware.device.startswith("cuda") else None)
    engine = Engine(family, hardware.device, config=engine_config(settings, hardware))
    engine.start()  # with --cuda_graphs auto|on on CUDA: warm-up, capture and self-check first (logged there)
    in_prefill = hardware.max_prefill_batch * hardware.prefill_workers
    service = OcrService(settings, family, engine, in_prefill)
    return Runtime(settings, hardware, family, engine, service, plan)


def engine_config(settings: Settings, hardware: Hardware) -> EngineConfig:
    return EngineConfig(max_batch_size=settings.max_batch_size, max_batch_tokens=settings.max_batch_tokens,
                        max_queue=settings.max_queue, request_timeout=settings.request_timeout,
                        max_prefill_batch=hardware.max_prefill_batch, prefill_workers=hardware.prefill_workers,
                        cuda_graphs=settings.cuda_graphs)
