"""Writing one input's outputs: ``STEM.md`` (the text), ``STEM.json`` (per page: text, blocks, usage,
finish_reason) and with ``--render`` ``STEM.page-N.png``.

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


def output_paths(outdir: Path, stem: str) -> OutputPaths:
    base = outdir / stem
    return OutputPaths(base.parent / f"{base.name}.md", base.parent / f"{base.name}.json", base)


def is_complete(paths: OutputPaths, render: bool) -> bool:
    """Outputs of an earlier run are all there (with ``render``, one picture per page the JSON lists)."""
    if not (paths.json.is_file() and paths.markdown.is_file()):
        return False
    if not render:
        return True
    try:
        pages = len(json.loads(paths.json.read_text(encoding="utf-8"))["pages"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all(paths.page_png(n).is_file() for n in range(1, pages + 1))


def markdown(pages: list[PageResult]) -> str:
    return PAGE_SEPARATOR.join(page.text for page in pages) + "\n"


def summed_usage(pages: list[PageResult]) -> dict[str, int]:
    total: dict[str, int] = {}
    for page in pages:
        for key, value in page.usage.items():
            if isinstance(value, int):
                total[key] = total.get(key, 0) + value
    return total


def document(source: str, kind: str, pages: list[PageResult], meta: dict[str, Any]) -> dict[str, Any]:
    finish = "length" if any(p.finish_reason == "length" for p in pages) else "stop"
    return {"source": source, "kind": kind, **meta, "finish_reason": finish, "usage": summed_usage(pages),
            "pages": [{"page": n, **page.to_dict()} for n, page in enumerate(pages, 1)]}


def forget(paths: OutputPaths) -> None:
    """Mark an input not done before redoing it, so an interrupted redo is redone too, not skipped."""
    with contextlib.suppress(FileNotFoundError):
        paths.json.unlink()


def write_outputs(paths: OutputPaths, doc: dict[str, Any], pages: list[PageResult]) -> None:
    """The Markdown, then the JSON that marks the input done (page pictures were written as they came)."""
    write_atomic(paths.markdown, markdown(pages).encode("utf-8"))
    write_atomic(paths.json, (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
