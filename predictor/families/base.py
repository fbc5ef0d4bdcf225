"""The contract every model family (DeepSeek-OCR v1, DeepSeek-OCR-2) fulfils for the engine.

A family knows how to recognise its checkpoint from ``config.json``, how to load it with transformers' native
classes, and how to turn one image plus one prompt into the batch-of-one tensors of a prefill forward pass.
The engine only ever calls ``model(**prepared.inputs, cache=..., use_cache=True)`` for a prefill and
``model(input_ids=..., attention_mask=..., position_ids=..., cache=...)`` for a decode step, so both families
batch together behind the same scheduler.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
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
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadSettings:
    device: str  # "cpu" | "cuda" | "cuda:N"
    dtype: Any  # a torch.dtype
    attn_implementation: str  # "sdpa" | "eager"
    experts_implementation: str | None  # "grouped_mm" | "batched_mm" | "eager" | None (library default)


class ModelFamily(abc.ABC):
    """One supported checkpoint family. Instances hold the loaded model and tokenizer."""

    #: Public name of the family, e.g. "deepseek-ocr-2".
    name: ClassVar[str]
    #: The values accepted for ``ImageOptions.mode``; the first is the default.
    modes: ClassVar[tuple[str, ...]]
    #: Largest accepted ``max_crops``.
    max_crops_limit: ClassVar[int]

    model: Any = None
    tokenizer: Any = None

    @classmethod
    @abc.abstractmethod
    def matches(cls, config: dict[str, Any]) -> bool:
        """True when a checkpoint's parsed ``config.json`` belongs to this family."""

    @abc.abstractmethod
    def load(self, path: str, settings: LoadSettings) -> None:
        """Load weights and tokenizer from a local directory with native classes (never remote code).

        Sets ``self.model`` (eval mode, on ``settings.device`` in ``settings.dtype``) and ``self.tokenizer``.
        Raises ``predictor.errors.LoadError`` naming what is wrong (missing tensor, bad config, ...).
        """

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

    def check_options(self, options: ImageOptions) -> ImageOptions:
        """Validate per-request options against this family; a bad value is a 400 naming the option."""
        if options.mode is not None and options.mode not in self.modes:
            raise InvalidRequest(
                f"mode {options.mode!r} is not valid for {self.name}; accepted values: {', '.join(self.modes)}",
                param="mode",
            )
        if options.max_crops is not None and not (1 <= options.max_crops <= self.max_crops_limit):
            raise InvalidRequest(
                f"max_crops must be an integer between 1 and {self.max_crops_limit} for {self.name}",
                param="max_crops",
            )
        return options

    @property
    def eos_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def max_context(self) -> int:
        """Context length of the text model (prompt + generated tokens)."""
        text_config = getattr(self.model.config, "text_config", self.model.config)
        return int(getattr(text_config, "max_position_embeddings", 8192))


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
