"""The contract every model family (DeepSeek-OCR v1, DeepSeek-OCR-2) fulfils for the engine.

A family knows how to recognise its checkpoint from ``config.json``, how to load it with transformers' native
classes (the loading steps common to every family are the template ``ModelFamily.load``), and how to turn one
image plus one prompt into the batch-of-one tensors of a prefill forward pass, including which prompts may share
one batched prefill (``PreparedPrompt.group_key``): the engine never looks at a family's input names.
The engine only ever calls ``model(**prepared.inputs, cache=..., use_cache=True)`` for a prefill and
``model(input_ids=..., attention_mask=..., position_ids=..., cache=...)`` for a decode step, so both families
batch together behind the same scheduler.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

from PIL import Image

from predictor.errors import InvalidRequest, LoadError


@dataclass(frozen=True)
class ImageOptions:
    """Per-request resolution settings. ``None`` means the family's (or the server's) default."""

    mode: str | None = None
    max_crops: int | None = None


@dataclass
class PreparedPrompt:
    """Tensors for one prefill forward pass (batch of one, on CPU, float32 pixels) and its token accounting."""

    inputs: dict[str, Any]
    prompt_tokens: int
    image_tokens: int
    # Size of the original image, for mapping grounding boxes back to pixels.
    image_size: tuple[int, int] = (0, 0)
    # Prompts with equal keys can be prefilled in one forward (their image tensors concatenate).
    group_key: Hashable = None

    def release(self) -> None:
        """Drop the forward's tensors once the prompt is prefilled: a running row needs only the counts above, and a
        letter page's pixels are ~55 MB in the v2 family (x the running batch, while every row decodes)."""
        self.inputs = {}


@dataclass(frozen=True)
class LoadSettings:
    device: str  # "cpu" | "cuda" | "cuda:N"
    dtype: Any  # a torch.dtype
    attn_implementation: str  # "sdpa" | "eager"
    experts_implementation: str | None  # "grouped_mm" | "batched_mm" | "eager" | None (library default)
    fused: bool = True  # fused RMSNorm/RoPE forwards in the text model (families/fused.py); False: transformers' own


class ModelFamily(abc.ABC):
    """One supported checkpoint family. Instances hold the loaded model and tokenizer."""

    #: Public name of the family, e.g. "deepseek-ocr-2".
    name: ClassVar[str]
    #: The values accepted for ``ImageOptions.mode``; the first is the default.
    modes: ClassVar[tuple[str, ...]]
    #: Largest accepted ``max_crops``, and the value used when a request does not say.
    max_crops_limit: ClassVar[int]
    default_max_crops: ClassVar[int]

    model: Any = None
    tokenizer: Any = None

    @classmethod
    @abc.abstractmethod
    def matches(cls, config: dict[str, Any]) -> bool:
        """True when a checkpoint's parsed ``config.json`` belongs to this family."""

    #: Name in load errors, e.g. "DeepSeek-OCR-2".
    display_name: ClassVar[str]

    def load(self, path: str, settings: LoadSettings, config: dict[str, Any] | None = None) -> None:
        """Load weights and tokenizer from a local directory with native classes (never remote code).

        ``config`` is the parsed ``config.json`` (read here when not given). Sets ``self.model`` (eval mode, on
        ``settings.device`` in ``settings.dtype``) and ``self.tokenizer``. Raises ``LoadError`` naming what is
        wrong (missing tensor, bad config, ...).
        """
        config = read_config(path) if config is None else config
        try:
            self.tokenizer = self._load_tokenizer(path, config)
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise LoadError(f"cannot load the tokenizer of {path}: {exc}") from exc
        kwargs = load_kwargs(settings)
        native = self._native_config(config)  # a remote-code layout's config, translated
        if native is not None:
            kwargs["config"] = native
        try:
            model, info = self._model_class().from_pretrained(path, **kwargs)
        except (OSError, ValueError, KeyError, RuntimeError, AttributeError) as exc:
            # Shape mismatches and unreadable files surface here; say which checkpoint and why.
            raise LoadError(f"cannot load {self.display_name} weights from {path}: {exc}") from exc
        raise_on_bad_keys(info, path, self.name)
        self._check_model(model)
        if "device_map" not in kwargs:
            model = model.to(settings.device)
        model.eval()
        if settings.fused:  # the one place transformers' module forwards are swapped
            from predictor.families.fused import fuse_text_model

            fuse_text_model(model)
        # Nothing on the serving path may compile (docs/ARCHITECTURE.md).
        model.generation_config.disable_compile = True
        self.model = model

    @abc.abstractmethod
    def _load_tokenizer(self, path: str, config: dict[str, Any]) -> Any:
        """The checkpoint's tokenizer (a family may keep a processor around it)."""

    @abc.abstractmethod
    def _model_class(self) -> Any:
        """The native transformers class whose ``from_pretrained`` loads the weights."""

    def _native_config(self, config: dict[str, Any]) -> Any:
        """A native config object for a remote-code ``config.json``, or None when the checkpoint is native."""
        return None

    def _check_model(self, model: Any) -> None:
        """Family checks on the loaded model, before it moves to the device."""
        return None

    @abc.abstractmethod
    def prepare(self, image: Image.Image, prompt: str, options: ImageOptions) -> PreparedPrompt:
        """Preprocess one RGB image and one prompt that already starts with ``<image>``."""

    @abc.abstractmethod
    def count_image_tokens(self, width: int, height: int, options: ImageOptions) -> int:
        """Number of ``<image>`` placeholders the prompt gets for an image of this size."""

    def decode_mask(self, mask: Any) -> Any:
        """The ``attention_mask`` for a one-token decode step, from the engine's ready ``[rows, 1, 1, keys]`` additive
        mask (0 = attend, dtype-min = padding). A ready 4-D mask skips transformers' per-step mask construction and
        its data-dependent checks, which wait for the device."""
        return mask

    # ---- shared helpers -------------------------------------------------------------------------------------

    @property
    def default_mode(self) -> str:
        return self.modes[0]

    @classmethod
    def image_options(cls, mode: str | None, max_crops: int | None) -> ImageOptions:
        """Per-request resolution settings, validated against this family (a bad value is a 400 naming the
        option) and with the family's defaults filled in. The only place these are checked."""
        if mode is not None and mode not in cls.modes:
            raise InvalidRequest(f"mode {mode!r} is not valid for {cls.name}; accepted values: {', '.join(cls.modes)}",
                                 param="mode")
        if max_crops is not None and not (1 <= max_crops <= cls.max_crops_limit):
            raise InvalidRequest(f"max_crops must be an integer between 1 and {cls.max_crops_limit} for {cls.name}",
                                 param="max_crops")
        return ImageOptions(mode or cls.modes[0], max_crops or cls.default_max_crops)

    @property
    def eos_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def max_context(self) -> int:
        """Context length of the text model (prompt + generated tokens)."""
        text_config = getattr(self.model.config, "text_config", self.model.config)
        return int(getattr(text_config, "max_position_embeddings", 8192))


def read_config(path: str) -> dict[str, Any]:
    config_path = os.path.join(path, "config.json")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read {config_path}: {exc}") from exc
    if not isinstance(config, dict):
        raise LoadError(f"{config_path} is not a JSON object")
    return config


def load_kwargs(settings: LoadSettings) -> dict[str, Any]:
    """``from_pretrained`` arguments common to every family.

    On a GPU the weights go straight to the device (``device_map``) instead of through a full copy in host memory;
    transformers needs the ``accelerate`` package for that, so without it they load on the CPU and move after.
    """
    kwargs: dict[str, Any] = {
        "dtype": settings.dtype,
        "attn_implementation": settings.attn_implementation,
        "output_loading_info": True,
        # Report shape mismatches in the loading info (checked by raise_on_bad_keys, naming each tensor) instead
        # of a bare "ignore_mismatched_sizes is False" error that names nothing.
        "ignore_mismatched_sizes": True,
    }
    if settings.experts_implementation:
        kwargs["experts_implementation"] = settings.experts_implementation
    if settings.device != "cpu" and _has_accelerate():
        kwargs["device_map"] = {"": settings.device}
    return kwargs


def _has_accelerate() -> bool:
    import importlib.util

    return importlib.util.find_spec("accelerate") is not None


def special_token_ids(tokenizer: Any) -> dict[str, int | None]:
    """The ids a translated config needs, read from the checkpoint's tokenizer (never the real model's constants)."""
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    if image_id is None or image_id == tokenizer.unk_token_id:
        image_id = None
    return {
        "image_token_id": image_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def raise_on_bad_keys(info: dict[str, Any], path: str, family: str) -> None:
    """Refuse a checkpoint whose tensors do not match the architecture instead of running random weights."""
    problems = []
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        names = sorted(_describe(k) for k in (info.get(key) or []))
        if names:
            shown = ", ".join(names[:10]) + (f" (+{len(names) - 10} more)" if len(names) > 10 else "")
            problems.append(f"{key.replace('_', ' ')}: {shown}")
    if problems:
        raise LoadError(f"checkpoint {path} does not match the {family} architecture; " + "; ".join(problems))


def _describe(entry: Any) -> str:
    # mismatched_keys entries are (name, checkpoint_shape, model_shape) tuples.
    if isinstance(entry, tuple) and len(entry) == 3:
        name, ckpt, expected = entry
        return f"{name} (checkpoint {tuple(ckpt)} vs model {tuple(expected)})"
    return str(entry)
