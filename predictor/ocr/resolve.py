"""The one step that turns a parsed request into what the service runs: options + model family + task ->
``ResolvedOptions``, and bytes -> ``Document``.

Every protocol calls it right after parsing, before any PDF page is rendered or an engine slot is taken, so a bad
value (a mode the family does not have, a ``locate`` task without ``ref``, ...) is a 400 naming the field before
any work is done. Only the room left in the context needs the prepared prompt and is checked in ``sampling``.
"""

from __future__ import annotations

from dataclasses import replace

from predictor.config import Settings
from predictor.constants import PDF_NGRAM
from predictor.errors import ConfigError, InvalidRequest
from predictor.families.base import ModelFamily
from predictor.ocr import tasks
from predictor.ocr.documents import PDF_DPI, DocumentLimits, PdfControls, decode_documents, is_pdf
from predictor.ocr.options import OcrOptions
from predictor.ocr.types import Document, DocumentKind, ResolvedOptions


class Resolver:
    def __init__(self, settings: Settings, family: type[ModelFamily] | ModelFamily):
        self.settings = settings
        self.family = family

    def options(self, options: OcrOptions, kind: DocumentKind = "image") -> ResolvedOptions:
        """Validate ``options`` against the family and the task list; fill the server's and the family's defaults.

        The repetition guard defaults depend on the kind of document: DeepSeek's PDF script uses a shorter guard
        (20/50) than its image script (30/90, our flags' default)."""
        image = self.family.image_options(options.mode or self.settings.default_mode, options.max_crops)
        ngram_size, ngram_window = self._ngram(options, kind)
        return ResolvedOptions(
            prompt=tasks.build_prompt(options.task, options.prompt, options.ref), image=image,
            raw=options.raw, render=options.render,
            labels_are_text=options.task == "grounding" and options.prompt is None and not options.raw,
            max_tokens=min(options.max_tokens or self.settings.default_max_tokens, self.settings.max_new_tokens),
            min_tokens=options.min_tokens, ignore_eos=options.ignore_eos, temperature=options.temperature,
            top_p=options.top_p, seed=options.seed, stop=options.stop, ngram_size=ngram_size,
            ngram_window=ngram_window, figures=options.figures, math=options.math,
            table_format=options.table_format, ngram_whitelist=self._whitelist(options.ngram_whitelist),
        )

    def _ngram(self, options: OcrOptions, kind: DocumentKind) -> tuple[int, int]:
        defaults = PDF_NGRAM if kind == "pdf" else (self.settings.ngram_size, self.settings.ngram_window)
        return (defaults[0] if options.ngram_size is None else options.ngram_size,
                defaults[1] if options.ngram_window is None else options.ngram_window)

    def for_kind(self, resolved: ResolvedOptions, options: OcrOptions, kind: DocumentKind) -> ResolvedOptions:
        """``resolved`` (``options`` resolved for an image) for a document of ``kind``: only the repetition
        guard's defaults differ, so nothing is validated again."""
        if kind == "image":
            return resolved
        ngram_size, ngram_window = self._ngram(options, kind)
        return replace(resolved, ngram_size=ngram_size, ngram_window=ngram_window)

    def _whitelist(self, ids: tuple[int, ...] | None) -> tuple[int, ...] | None:
        """Token ids must exist in the loaded tokenizer (a checkpoint's ids differ from another's)."""
        tokenizer = getattr(self.family, "tokenizer", None)
        if ids is None or tokenizer is None:
            return ids
        size = len(tokenizer)
        outside = [i for i in ids if i >= size]
        if outside:
            raise InvalidRequest(f"token ids {outside[:8]} are outside the tokenizer's vocabulary (0..{size - 1})",
                                 param="ngram_whitelist")
        return ids

    def document(self, data: bytes, field: str, options: OcrOptions, where: str | None = None) -> Document:
        """One input alone (see ``documents``)."""
        return self.documents([(data, field, options, where)])[0]

    def documents(self, items: list[tuple[bytes, str, OcrOptions, str | None]],
                  resolved_for_image: ResolvedOptions | None = None) -> list[Document]:
        """Decode the inputs of one request, ``(data, field, options, where)`` each, after every option is
        resolved, so a bad option is refused before any page is rendered; then every PDF's page count and
        rendered size are checked against the request's limits, still before anything renders. ``where``
        (e.g. ``instances[2]``) prefixes an option's name in errors. ``resolved_for_image``: the items' common
        options, already resolved by the caller (``options(...)``), so they are not resolved twice. Runs in a
        worker thread (CPU work)."""
        resolved = []
        for data, _, options, where in items:
            kind: DocumentKind = "pdf" if is_pdf(data) else "image"
            try:
                if resolved_for_image is None:
                    resolved.append((kind, self.options(options, kind)))
                else:
                    resolved.append((kind, self.for_kind(resolved_for_image, options, kind)))
            except InvalidRequest as exc:
                if where is None:
                    raise
                raise prefixed(exc, where) from exc
        controls = [PdfControls(options.dpi or PDF_DPI, options.pages, f"{where}.pages" if where else "pages")
                    for _, _, options, where in items]
        pages = decode_documents([(data, field) for data, field, _, _ in items],
                                 DocumentLimits.from_settings(self.settings), lazy=True, controls=controls)
        return [Document(doc_pages, kind, options) for doc_pages, (kind, options) in zip(pages, resolved, strict=True)]


def prefixed(exc: InvalidRequest, where: str) -> InvalidRequest:
    """The same error with the path of the element it concerns in front of the field name."""
    param = f"{where}.{exc.param}" if exc.param else where
    return InvalidRequest(f"{param}: {exc.message}", param=param)  # KServe's body shows only the message


def check_default_mode(settings: Settings, family: type[ModelFamily]) -> None:
    """``--default_mode`` must be one of the family's modes: checked once at start-up, before weights load, so a
    typo does not turn every request into a 400 that blames the client's ``mode``."""
    if settings.default_mode is not None and settings.default_mode not in family.modes:
        raise ConfigError(f"--default_mode {settings.default_mode!r} is not a mode of {family.name}; accepted: "
                          f"{', '.join(family.modes)}")


__all__ = ["Document", "DocumentKind", "ResolvedOptions", "Resolver", "check_default_mode", "prefixed"]
