"""Writing one input's outputs, what DeepSeek's PDF script writes: ``STEM.md`` (the text, figure links relative
to it), ``STEM_images/{page}_{i}.jpg`` (the figures, a folder per input), ``STEM.json`` (per page: text, blocks,
usage, finish_reason, figures), with ``--raw`` ``STEM.raw.md`` (the text with grounding tags), with ``--render``
``STEM.layouts.pdf`` (every page with its boxes) and with ``--render-png`` ``STEM.page-N.png``.

Every file is written to a temporary name in the same folder and renamed into place, and ``STEM.json`` goes last:
an interrupted run never leaves a half file, and an input counts as done (for resume) only once its JSON exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from predictor.client.protocol import PageResult
from predictor.constants import PAGE_SEPARATOR


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file, or no file, or all of the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are 0600, while outputs should get the umask's usual permissions.
    temp = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:  # KeyboardInterrupt and cancellation too: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@dataclass(frozen=True)
class OutputPaths:
    markdown: Path
    json: Path
    stem: Path

    def page_png(self, number: int) -> Path:
        return self.stem.parent / f"{self.stem.name}.page-{number}.png"

    @property
    def raw(self) -> Path:
        return self.stem.parent / f"{self.stem.name}.raw.md"

    @property
    def layouts(self) -> Path:
        return self.stem.parent / f"{self.stem.name}.layouts.pdf"

    @property
    def images(self) -> Path:
        """The input's own figure folder, so a.pdf and b.pdf never overwrite each other's 0_0.jpg."""
        return self.stem.parent / f"{self.stem.name}_images"


def output_paths(outdir: Path, stem: str) -> OutputPaths:
    base = outdir / stem
    return OutputPaths(base.parent / f"{base.name}.md", base.parent / f"{base.name}.json", base)


def is_complete(paths: OutputPaths, render: bool, raw: bool = False, layouts: bool = False) -> bool:
    """Outputs of an earlier run are all there: the Markdown and JSON, every figure the JSON lists, and what the
    run asks for besides (``render``: one picture per page; ``raw``; ``layouts``: the layout PDF)."""
    if not (paths.json.is_file() and paths.markdown.is_file()):
        return False
    if (raw and not paths.raw.is_file()) or (layouts and not paths.layouts.is_file()):
        return False
    try:
        pages = json.loads(paths.json.read_text(encoding="utf-8"))["pages"]
        files = [paths.stem.parent / f["file"] for page in pages for f in page.get("figures") or []]
        numbers = [page["page"] for page in pages]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not all(f.is_file() for f in files):
        return False
    return not render or all(paths.page_png(n).is_file() for n in numbers)


def markdown(pages: list[PageResult]) -> str:
    return PAGE_SEPARATOR.join(page.text for page in pages) + "\n"


def raw_markdown(pages: list[PageResult]) -> str:
    return PAGE_SEPARATOR.join(page.raw_text for page in pages) + "\n"


def summed_usage(pages: list[PageResult]) -> dict[str, int]:
    total: dict[str, int] = {}
    for page in pages:
        for key, value in page.usage.items():
            if isinstance(value, int):
                total[key] = total.get(key, 0) + value
    return total


def document(source: str, kind: str, pages: list[PageResult], meta: dict[str, Any],
             numbers: list[int] | None = None) -> dict[str, Any]:
    """``numbers``: the pages' 1-based numbers in the input (1, 2, ... unless ``--pages`` chose some)."""
    finish = "length" if any(p.finish_reason == "length" for p in pages) else "stop"
    numbers = numbers or list(range(1, len(pages) + 1))
    return {"source": source, "kind": kind, **meta, "finish_reason": finish, "usage": summed_usage(pages),
            "pages": [{"page": n, **page.to_dict()} for n, page in zip(numbers, pages, strict=True)]}


def forget(paths: OutputPaths) -> None:
    """Mark an input not done before redoing it, so an interrupted redo is redone too, not skipped."""
    with contextlib.suppress(FileNotFoundError):
        paths.json.unlink()


def write_outputs(paths: OutputPaths, doc: dict[str, Any], pages: list[PageResult], raw: bool = False,
                  layouts: bytes | None = None) -> None:
    """The Markdown (and the raw Markdown, the layout PDF), then the JSON that marks the input done (figures and
    page pictures were written as they came)."""
    write_atomic(paths.markdown, markdown(pages).encode("utf-8"))
    if raw:
        write_atomic(paths.raw, raw_markdown(pages).encode("utf-8"))
    if layouts is not None:
        write_atomic(paths.layouts, layouts)
    write_atomic(paths.json, (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
