"""Batch client, no server: which inputs are found, where outputs go, atomic writes, resume checks."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

import pytest

from predictor.client import outputs
from predictor.client.discovery import DiscoveryError, discover
from predictor.client.protocol import PageResult
from predictor.constants import PAGE_SEPARATOR


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folder_is_recursed_images_and_pdfs_kept_others_skipped(tmp_path):
    root = tmp_path / "scans"
    for name in ("a.PNG", "sub/b.jpeg", "sub/deep/c.pdf", "sub/d.tiff", "notes.txt", ".hidden.png",
                 ".git/e.png", "sub/f.webp", "g.gif", "h.bmp", "i.jpg", "j.tif"):
        touch(root / name)
    found = discover([str(root)])
    assert [str(i.relative) for i in found.inputs] == [
        "a.PNG", "g.gif", "h.bmp", "i.jpg", "j.tif", "sub/b.jpeg", "sub/d.tiff", "sub/f.webp", "sub/deep/c.pdf"]
    assert [i.stem for i in found.inputs][:2] == ["a", "g"] and found.inputs[-1].stem == "sub/deep/c"
    assert {i.kind for i in found.inputs if i.path.suffix == ".pdf"} == {"pdf"}
    assert [p.name for p in found.skipped] == ["notes.txt"]


def test_files_and_globs_keep_their_path_under_the_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "in/x/1.png")
    touch(tmp_path / "in/y/2.pdf")
    touch(tmp_path / "in/y/3.txt")
    found = discover(["in/*/*", "in/x/1.png"])  # the file is also matched by the glob: taken once
    assert [(str(i.relative), i.stem) for i in found.inputs] == [("x/1.png", "x/1"), ("y/2.pdf", "y/2")]
    assert [str(p) for p in found.skipped] == ["in/y/3.txt"]
    single = discover([str(tmp_path / "in/y/2.pdf")])
    assert single.inputs[0].relative == PurePosixPath("2.pdf") and single.inputs[0].stem == "2"
    recursive = discover(["in/**/*.pdf"])
    assert [str(i.relative) for i in recursive.inputs] == ["y/2.pdf"]


def test_same_stem_keeps_suffixes_and_true_collisions_are_refused(tmp_path):
    touch(tmp_path / "a/scan.png")
    touch(tmp_path / "a/scan.pdf")
    touch(tmp_path / "a/other.png")
    found = discover([str(tmp_path / "a")])
    assert sorted(i.stem for i in found.inputs) == ["other", "scan.pdf", "scan.png"]
    touch(tmp_path / "b/other.png")
    with pytest.raises(DiscoveryError, match="same outputs"):
        discover([str(tmp_path / "a"), str(tmp_path / "b")])


def test_paths_that_name_nothing_are_errors(tmp_path):
    with pytest.raises(DiscoveryError, match="no such file"):
        discover([str(tmp_path / "missing")])
    with pytest.raises(DiscoveryError, match="no file matches"):
        discover([str(tmp_path / "*.png")])


def test_output_paths_mirror_the_stem(tmp_path):
    paths = outputs.output_paths(tmp_path, "sub/a")
    assert paths.markdown == tmp_path / "sub/a.md" and paths.json == tmp_path / "sub/a.json"
    assert paths.page_png(3) == tmp_path / "sub/a.page-3.png"
    dotted = outputs.output_paths(tmp_path, "scan.pdf")
    assert dotted.markdown == tmp_path / "scan.pdf.md" and dotted.page_png(1) == tmp_path / "scan.pdf.page-1.png"


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "deep/out.md"
    outputs.write_atomic(target, b"first")
    old_umask = os.umask(0o022)
    try:
        outputs.write_atomic(target, b"second")
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"second" and oct(target.stat().st_mode & 0o777) == oct(0o644)

    def broken_replace(src, dst):
        raise KeyboardInterrupt  # an interrupt at the worst moment

    monkeypatch.setattr(outputs.os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        outputs.write_atomic(target, b"third")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.md"]  # no temporary file left


def pages(*texts: str) -> list[PageResult]:
    return [PageResult(t, "stop", {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}) for t in texts]


def test_outputs_document_and_resume_check(tmp_path):
    paths = outputs.output_paths(tmp_path, "doc")
    results = pages("one", "two")
    results[1].finish_reason = "length"
    doc = outputs.document("doc.pdf", "pdf", results, {"model": "m"})
    assert not outputs.is_complete(paths, render=False)
    for number in (1, 2):
        outputs.write_atomic(paths.page_png(number), b"png")
    outputs.write_outputs(paths, doc, results)
    assert paths.markdown.read_text() == f"one{PAGE_SEPARATOR}two\n"
    saved = json.loads(paths.json.read_text())
    assert saved["finish_reason"] == "length" and saved["usage"] == {"prompt_tokens": 20, "completion_tokens": 4,
                                                                     "total_tokens": 24}
    assert [p["page"] for p in saved["pages"]] == [1, 2] and saved["pages"][1]["text"] == "two"
    assert outputs.is_complete(paths, render=False) and outputs.is_complete(paths, render=True)
    paths.page_png(2).unlink()
    assert outputs.is_complete(paths, render=False) and not outputs.is_complete(paths, render=True)
    outputs.forget(paths)  # redoing it: an interruption now must not leave it looking done
    assert not outputs.is_complete(paths, render=False) and paths.markdown.exists()
    outputs.forget(paths)


def test_bad_arguments_exit_2(tmp_path, capsys):
    from predictor.client.cli import main

    assert main([str(tmp_path / "missing.png")]) == 2
    assert "missing.png: no such file or folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["--url", "http://h", "--model_dir", str(tmp_path), str(tmp_path)])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["--concurrency", "0", str(tmp_path)])
    assert exited.value.code == 2
    touch(tmp_path / "a.png")
    assert main(["--model_dir", str(tmp_path / "nothing"), "-o", str(tmp_path / "out"), str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err
    touch(tmp_path / "odd/config.json", b'{"model_type": "bert"}')
    assert main(["--model_dir", str(tmp_path / "odd"), "--device", "cpu", "-o", str(tmp_path / "out"),
                 str(tmp_path / "a.png")]) == 2
    assert "unsupported checkpoint" in capsys.readouterr().err and not (tmp_path / "out").exists()
