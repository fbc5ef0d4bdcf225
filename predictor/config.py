"""One settings object for the whole server: our flags on top of kserve's, each also read from the environment.

Every flag ``--some_flag`` can be given as ``PREDICTOR_SOME_FLAG`` instead (the command line wins). Everything
is validated here, before any weights load, so a bad combination fails in milliseconds with a clear message.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any

from predictor.constants import DEVICE_PATTERN, IMAGE_NGRAM, MAX_NGRAM_SIZE
from predictor.errors import ConfigError

ENV_PREFIX = "PREDICTOR_"
DEFAULT_MODEL_ID = "deepseek-ai/DeepSeek-OCR"
DEFAULT_MODEL_NAME = "deepseek-ocr"
DEFAULT_V2_MODEL_ID = "deepseek-ai/DeepSeek-OCR-2"
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def _bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {value!r}")


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass(frozen=True)
class Settings:
    """Validated server settings. Field names equal flag names."""

    model_name: str = DEFAULT_MODEL_NAME
    served_model_names: list[str] = field(default_factory=list)
    serve_hub_name: bool = True
    model_id: str | None = None
    model_dir: str | None = None
    revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    attn_implementation: str = "auto"
    experts_implementation: str = "auto"
    sdpa_cudnn: str = "auto"
    cuda_graphs: str = "auto"
    max_new_tokens: int = 8192
    default_max_tokens: int = 4096
    max_batch_size: int = 8
    max_batch_tokens: int = 131072
    max_queue: int = 64
    max_prefill_batch: int = 0
    prefill_workers: int = 0
    request_timeout: float = 600.0
    max_body_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    max_instances: int = 16
    max_images_per_request: int = 8
    max_pdf_pages: int = 32
    max_page_pixels: int = 8_000_000
    max_request_pixels: int = 100_000_000
    max_response_bytes: int = 32 * 1024 * 1024
    allow_remote_images: bool = False
    remote_image_hosts: list[str] = field(default_factory=list)
    remote_image_max_bytes: int = 16 * 1024 * 1024
    remote_image_timeout: float = 10.0
    ngram_size: int = IMAGE_NGRAM[0]
    ngram_window: int = IMAGE_NGRAM[1]
    default_mode: str | None = None
    api_key: list[str] = field(default_factory=list, repr=False)
    api_key_file: str | None = None
    metrics_auth: bool = False
    enable_repository_extension: bool = False
    ui: bool = True
    shutdown_grace: float = 30.0
    http_port: int = 8080
    grpc_port: int = 8081
    enable_grpc: bool = True
    workers: int = 1

    @property
    def model_source(self) -> str:
        """The local directory if given, else the hub id (the default model when neither is set)."""
        return self.model_dir or self.model_id or DEFAULT_MODEL_ID

    @property
    def hub_name(self) -> str | None:
        """The Hugging Face id of the served weights (what vLLM serves them as), when known and wanted."""
        if not self.serve_hub_name:
            return None
        if not self.model_dir:
            return self.model_id or DEFAULT_MODEL_ID
        return _hub_id_of_dir(self.model_dir)

    @property
    def all_model_names(self) -> list[str]:
        names = [self.model_name, *self.served_model_names, *([self.hub_name] if self.hub_name else [])]
        return list(dict.fromkeys(names))


@functools.lru_cache(maxsize=8)
def _hub_id_of_dir(model_dir: str) -> str | None:
    """A local checkpoint's hub id: its config's ``_name_or_path`` when that is one, the HF cache folder it sits in
    (``models--owner--name``), else the canonical id of its architecture (a copy of the official weights)."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):  # a pipe (or anything but a file) is read by the loader alone
        return None
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    named = config.get("_name_or_path") if isinstance(config, dict) else None
    if isinstance(named, str) and _HUB_ID.fullmatch(named) and not os.path.exists(named):
        return named
    cached = re.search(r"models--([\w.-]+)--([\w.-]+)", os.path.realpath(model_dir))
    if cached:
        return f"{cached.group(1)}/{cached.group(2)}"
    if not isinstance(config, dict):
        return None
    vision = json.dumps(config.get("vision_config") or {})
    if config.get("model_type") == "deepseek_ocr2" or "qwen2" in vision:
        return DEFAULT_V2_MODEL_ID
    if config.get("model_type") in ("DeepseekOCR", "deepseek_vl_v2", "unlimited_ocr"):
        return DEFAULT_MODEL_ID
    return None


# Flags kserve's own parser defines (and owns) when ours is built on top of it.
# The serving processes' environment, set by both entry points (``python -m predictor``, and Ray Serve's replicas)
# before torch or tokenizers load: no torch.compile / Inductor / Triton on the serving path (docs/ARCHITECTURE.md);
# no tokenizers thread pool next to the engine's threads.
SERVING_ENV = {"TORCH_COMPILE_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}


def set_serving_environment() -> None:
    """Set ``SERVING_ENV`` where the environment does not say otherwise; call it before torch is imported."""
    for key, value in SERVING_ENV.items():
        os.environ.setdefault(key, value)


KSERVE_FLAGS = ("http_port", "grpc_port", "enable_grpc", "workers")

_CHOICES = {
    "dtype": ("auto", "bfloat16", "float16", "float32"),
    "attn_implementation": ("auto", "sdpa", "eager"),
    "experts_implementation": ("auto", "grouped_mm", "batched_mm", "eager"),
    "sdpa_cudnn": ("auto", "on", "off"),
    "cuda_graphs": ("auto", "on", "off"),
}
_HELP = {
    "model_name": "name in KServe and OpenAI routes",
    "served_model_names": "comma-separated aliases accepted as `model` (OpenAI) and in KServe URLs",
    "serve_hub_name": "also serve under the weights' Hugging Face id (e.g. deepseek-ai/DeepSeek-OCR), as vLLM does",
    "model_id": f"HuggingFace repo id to download (default {DEFAULT_MODEL_ID} when --model_dir is not given)",
    "model_dir": "local checkpoint directory, e.g. /mnt/models from KServe's storage initializer",
    "revision": "hub revision (branch, tag or commit) for --model_id",
    "device": "auto | cpu | cuda | cuda:N (auto picks cuda when available)",
    "dtype": "auto = bfloat16 on CUDA, float32 on CPU",
    "sdpa_cudnn": "cuDNN attention in SDPA (CUDA): auto = off (its plans are built per exact shape; "
                  "docs/PERFORMANCE.md), on = torch's own choice; the backend each phase uses is logged at start-up",
    "cuda_graphs": "decode from CUDA graphs captured at start-up: auto = on only where the decode forward is "
                   "sync-free and a self-check matches eager decode (else off, reason logged), on = the same checks "
                   "but a failure stops start-up, off = eager decode",
    "max_new_tokens": "hard cap on generated tokens per request",
    "default_max_tokens": "generated tokens when a request does not say",
    "max_batch_size": "rows decoded together in one step",
    "max_batch_tokens": "KV-cache budget in positions: running rows x the longest row's prompt + max new tokens",
    "max_queue": "requests waiting beyond the running batch; more get 429",
    "max_prefill_batch": "requests prefilled in one forward (0 = auto: 4 on CUDA, 1 on CPU where batching "
                         "the vision encoder measured no faster)",
    "prefill_workers": "prefills running at once beside the decode loop (0 = auto: 2 on CPU, where a second one "
                       "keeps both cores busy while rows decode; 1 on CUDA, one prefill stream)",
    "request_timeout": "seconds a request may take end to end",
    "max_body_bytes": "largest request body",
    "max_image_pixels": "largest decoded image (width x height)",
    "max_instances": "most images in one KServe v1/v2 request",
    "max_images_per_request": "most images in one OpenAI chat request",
    "max_pdf_pages": "most PDF pages in one request (all its documents together), counted before rendering",
    "max_page_pixels": "most pixels of one rendered PDF page: a larger page renders below 144 DPI",
    "max_request_pixels": "most pixels of all rendered PDF pages of one request (checked before rendering)",
    "max_response_bytes": "response size budget: figure crops (figures option) past it are left out and reported",
    "allow_remote_images": "allow http(s) image URLs (public addresses of --remote_image_hosts only)",
    "remote_image_hosts": "comma-separated host names remote images may come from",
    "ngram_size": "repetition guard n-gram size (0 disables)",
    "ngram_window": "repetition guard window over generated tokens",
    "default_mode": "resolution mode when a request does not say (family default when unset)",
    "api_key": "comma-separated API keys; when set (or --api_key_file), inference and repository routes need "
               "'Authorization: Bearer KEY' (OpenAI routes also take 'api-key: KEY'; gRPC the authorization "
               "metadata). Probes stay open",
    "api_key_file": "file with one API key per line (a mounted Secret); adds to --api_key",
    "metrics_auth": "whether /metrics needs the API key too",
    "enable_repository_extension": "allow model load/unload over /v2/repository and gRPC (off: 403)",
    "ui": "serve the playground page at /ui (static files; it calls the same APIs, with the key when one is set)",
    "shutdown_grace": "seconds in-flight requests may take to finish after SIGTERM (readiness turns 503 at once)",
}


def build_parser(parents: list[argparse.ArgumentParser] | None = None) -> argparse.ArgumentParser:
    """Our flags; pass ``[kserve.model_server.parser]`` as parents to add kserve's own."""
    parser = argparse.ArgumentParser(
        prog="python -m predictor", parents=parents or [], conflict_handler="resolve",
        description="KServe predictor for DeepSeek-OCR. Every --flag can also be set as PREDICTOR_FLAG.",
    )
    defaults = Settings()
    for f in fields(Settings):
        if f.name in KSERVE_FLAGS and parents:
            continue  # kserve's parser owns these
        kwargs: dict[str, Any] = {"help": _HELP.get(f.name), "default": None}
        if f.name in _CHOICES:
            kwargs["choices"] = _CHOICES[f.name]
        converter = _converter(getattr(defaults, f.name))
        if converter is not None:
            kwargs["type"] = converter
        parser.add_argument(f"--{f.name}", **kwargs)
    return parser


def _converter(default: Any) -> Any:
    """How a flag's text becomes its value, by the type of its default (None: kept as text)."""
    return {bool: _bool, int: int, float: float, list: _csv}.get(type(default))


def _from_env(name: str, converter: Any) -> Any:
    raw = os.environ.get(ENV_PREFIX + name.upper())
    if raw is None:
        return None
    try:
        return converter(raw) if converter else raw
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from exc


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Merge command line, environment and defaults, then validate."""
    defaults = Settings()
    values: dict[str, Any] = {}
    for f in fields(Settings):
        value = getattr(args, f.name, None)
        default = getattr(defaults, f.name)
        if value is None or (f.name in KSERVE_FLAGS and value == default):
            env_value = _from_env(f.name, _converter(default))
            value = env_value if env_value is not None else (value if value is not None else default)
        if f.name in _CHOICES and value not in _CHOICES[f.name]:
            raise ConfigError(f"--{f.name} must be one of {', '.join(_CHOICES[f.name])}, got {value!r}")
        values[f.name] = value
    settings = Settings(**values)
    validate(settings, explicit_model_id=values["model_id"] is not None)
    return settings


def validate(s: Settings, explicit_model_id: bool = True) -> None:
    if s.model_dir and explicit_model_id and s.model_id:
        raise ConfigError("give either --model_id or --model_dir, not both")
    if s.model_dir and not os.path.exists(os.path.join(s.model_dir, "config.json")):
        raise ConfigError(f"--model_dir {s.model_dir!r} has no config.json (is it a checkpoint directory?)")
    positive = ("max_new_tokens", "default_max_tokens", "max_batch_size", "max_batch_tokens", "max_body_bytes",
                "max_image_pixels", "max_instances", "max_images_per_request", "max_pdf_pages", "max_page_pixels",
                "max_request_pixels", "remote_image_max_bytes", "max_response_bytes")
    for name in positive:
        if getattr(s, name) < 1:
            raise ConfigError(f"--{name} must be at least 1, got {getattr(s, name)}")
    if s.max_queue < 0 or s.max_prefill_batch < 0 or s.prefill_workers < 0:
        raise ConfigError("--max_queue, --max_prefill_batch and --prefill_workers must be 0 or more")
    if s.default_max_tokens > s.max_new_tokens:
        raise ConfigError(f"--default_max_tokens ({s.default_max_tokens}) exceeds --max_new_tokens "
                          f"({s.max_new_tokens})")
    if s.request_timeout <= 0 or s.remote_image_timeout <= 0:
        raise ConfigError("--request_timeout and --remote_image_timeout must be positive")
    if s.remote_image_hosts and not s.allow_remote_images:
        raise ConfigError("--remote_image_hosts needs --allow_remote_images=true")
    if s.allow_remote_images and not s.remote_image_hosts:
        raise ConfigError("--allow_remote_images=true needs --remote_image_hosts (an allow-list of host names)")
    if not (0 <= s.ngram_size <= MAX_NGRAM_SIZE) or (s.ngram_size and s.ngram_window < s.ngram_size):
        raise ConfigError(f"--ngram_size must be 0..{MAX_NGRAM_SIZE} and --ngram_window at least --ngram_size")
    if s.shutdown_grace < 0:
        raise ConfigError("--shutdown_grace must be 0 or more")
    if s.api_key_file and not os.path.isfile(s.api_key_file):
        raise ConfigError(f"--api_key_file {s.api_key_file!r} is not a readable file")
    if any(len(key) < 8 or any(c.isspace() for c in key) for key in s.api_key):
        raise ConfigError("each --api_key must be at least 8 characters without whitespace")
    if s.workers != 1:
        # kserve's multi-process mode pickles the model into each worker and drops the routes we add to the
        # app (docs/ARCHITECTURE.md): scale with replicas instead.
        raise ConfigError("--workers must be 1; scale with replicas (or --max_batch_size) instead")
    if not re.fullmatch(DEVICE_PATTERN, s.device):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, not {s.device!r}")
    if s.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {s.device} was requested but no CUDA device is visible")
        index = torch.device(s.device).index
        if index is not None and index >= torch.cuda.device_count():
            raise ConfigError(f"--device {s.device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if s.device == "cpu" and s.dtype == "float16":
        raise ConfigError("--dtype float16 is not supported on --device cpu; use float32 or bfloat16")
