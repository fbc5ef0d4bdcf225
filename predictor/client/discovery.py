"""Which files to OCR and where their outputs go.

A PATH is a file, a folder (recursed) or a glob. Each input keeps its path relative to the folder it was found
under (for a glob, the folder before the first wildcard), so ``ROOT/sub/a.pdf`` becomes ``OUTDIR/sub/a.md``.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
PDF_SUFFIXES = frozenset({".pdf"})


class DiscoveryError(ValueError):
    """A PATH argument that names nothing: a bad argument (exit code 2), not a failed file."""


@dataclass(frozen=True)
class InputFile:
    path: Path  # the file on disk
    relative: PurePosixPath  # where it sits under its root; outputs mirror it
    kind: str  # "image" | "pdf"
    stem: str = ""  # output name without suffix, relative to OUTDIR (set by assign_outputs)


@dataclass
class Discovered:
    inputs: list[InputFile] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # files found that are neither images nor PDFs


def kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in PDF_SUFFIXES:
        return "pdf"
    return None


def _has_magic(part: str) -> bool:
    return glob.has_magic(part)


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob before the first component with a wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _walk(folder: Path) -> list[Path]:
    found = []
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # hidden folders (.git, ...) are not inputs
        found.extend(Path(current) / name for name in sorted(files) if not name.startswith("."))
    return found


def _expand(arg: str) -> list[tuple[Path, Path]]:
    """(file, root) pairs for one PATH argument."""
    path = Path(arg)
    if path.is_dir():
        return [(f, path) for f in _walk(path)]
    if path.is_file():
        return [(path, path.parent)]
    if _has_magic(arg):
        root = _glob_root(arg)
        pairs: list[tuple[Path, Path]] = []
        for match in sorted(glob.glob(arg, recursive=True)):
            m = Path(match)
            pairs.extend([(f, root) for f in _walk(m)] if m.is_dir() else [(m, root)])
        if pairs:
            return pairs
        raise DiscoveryError(f"{arg}: no file matches")
    raise DiscoveryError(f"{arg}: no such file or folder")


def discover(args: list[str]) -> Discovered:
    """Expand PATH arguments into inputs (each file once, in a stable order) and skipped files."""
    result = Discovered()
    seen: set[Path] = set()
    for arg in args:
        for file, root in _expand(arg):
            resolved = file.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            kind = kind_of(file)
            if kind is None:
                result.skipped.append(file)
                continue
            relative = PurePosixPath(file.relative_to(root).as_posix()) if file.is_relative_to(root) else \
                PurePosixPath(file.name)
            result.inputs.append(InputFile(file, relative, kind))
    result.inputs = assign_outputs(result.inputs)
    return result


def assign_outputs(inputs: list[InputFile]) -> list[InputFile]:
    """Give every input its output stem: ``sub/a`` for ``sub/a.pdf``. When two inputs would share a stem
    (``a.png`` beside ``a.pdf``), both keep their suffix (``a.png``, ``a.pdf``); if even that collides (the same
    relative path under two roots), that is a bad argument."""
    by_stem: dict[str, list[InputFile]] = {}
    for item in inputs:
        by_stem.setdefault(str(item.relative.with_suffix("")).lower(), []).append(item)
    named: list[InputFile] = []
    taken: dict[str, InputFile] = {}
    for item in inputs:
        clash = len(by_stem[str(item.relative.with_suffix("")).lower()]) > 1
        stem = str(item.relative) if clash else str(item.relative.with_suffix(""))
        other = taken.get(stem.lower())
        if other is not None:
            raise DiscoveryError(f"{item.path} and {other.path} would write the same outputs ({stem}.md); "
                                 "OCR them in separate runs or to separate output folders")
        taken[stem.lower()] = item
        named.append(InputFile(item.path, item.relative, item.kind, stem))
    return named
