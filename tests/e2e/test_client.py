"""The batch client against a real server process: folders to Markdown/JSON, resume, interrupts, in-process runs."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.e2e.client_helpers import (
    check_complete,
    client_command,
    image_size,
    leftovers,
    make_images,
    make_mixed_folder,
    metric,
    run_client,
    summary_count,
)
from tests.e2e.server import free_port

PROMPT_TOKENS = "deepseek_ocr_prompt_tokens_total"


@pytest.mark.parametrize("protocol", ["openai", "v1"])
def test_mixed_folder(server, tmp_path, protocol):
    make_mixed_folder(tmp_path / "in")
    out = tmp_path / "out"
    extra = ["--render", "--render-png"] if protocol == "v1" else []
    result = run_client("--url", server.url, "--protocol", protocol, "--max-tokens", "6", "-o", str(out),
                        str(tmp_path / "in"), *extra)
    assert result.returncode == 1, result.stderr  # the corrupt image failed
    assert "FAILED broken.png: HTTP 400:" in result.stderr and "truncated" in result.stderr
    assert "not sent: " in result.stderr and "notes.txt" in result.stderr
    assert summary_count(result.stderr, "done") == 3 and summary_count(result.stderr, "failed") == 1
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    pictures = ["a.page-1.png", "sub/b.page-1.png"] + [f"sub/deeper/doc.page-{n}.png" for n in (1, 2, 3)]
    pictures += ["a.layouts.pdf", "sub/b.layouts.pdf", "sub/deeper/doc.layouts.pdf"]
    assert names == sorted(["a.json", "a.md", "sub/b.json", "sub/b.md", "sub/deeper/doc.json",
                            "sub/deeper/doc.md"] + (pictures if extra else []))
    doc = check_complete(out, "sub/deeper/doc")
    assert doc["source"] == "sub/deeper/doc.pdf" and doc["kind"] == "pdf" and doc["protocol"] == protocol
    assert [page["page"] for page in doc["pages"]] == [1, 2, 3]
    # Pages were rendered here at 144 DPI (600x760 px): the v2 global view alone, 257 image tokens each.
    assert [page["usage"]["image_tokens"] for page in doc["pages"]] == [257, 257, 257]
    assert doc["usage"]["completion_tokens"] == sum(p["usage"]["completion_tokens"] for p in doc["pages"]) > 0
    assert all(p["finish_reason"] in ("stop", "length") and isinstance(p["blocks"], list) for p in doc["pages"])
    image = check_complete(out, "sub/b")
    assert len(image["pages"]) == 1 and image["kind"] == "image" and image["pages"][0]["usage"]["prompt_tokens"] > 0
    if extra:
        assert image_size(out / "sub/deeper/doc.page-2.png") == (600, 760)
        assert image_size(out / "sub/b.page-1.png") == (500, 300)


def test_resume_sends_nothing_and_overwrite_does(server, tmp_path):
    make_images(tmp_path / "in", 2)
    out = tmp_path / "out"
    args = ("--url", server.url, "--max-tokens", "4", "-o", str(out), str(tmp_path / "in"))
    first = run_client(*args)
    assert first.returncode == 0, first.stderr
    before = metric(server.url, PROMPT_TOKENS)
    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run_client(*args)
    assert again.returncode == 0, again.stderr
    assert summary_count(again.stderr, "skipped") == 2 and summary_count(again.stderr, "done") == 0
    assert metric(server.url, PROMPT_TOKENS) == before  # no request reached the model
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    forced = run_client(*args, "--overwrite")
    assert forced.returncode == 0, forced.stderr
    assert summary_count(forced.stderr, "done") == 2
    spent = summary_count(forced.stderr, "prompt")
    assert spent > 0 and metric(server.url, PROMPT_TOKENS) == before + spent


def test_interrupt_then_resume_leaves_every_output_complete(server, tmp_path):
    inputs = make_images(tmp_path / "in", 16)
    out = tmp_path / "out"
    args = ("--url", server.url, "--max-tokens", "8", "--concurrency", "1", "-o", str(out), str(tmp_path / "in"))
    # SIGINT back to its default in the client: a test run started in the background of a shell without job
    # control (`make test &`, nohup) inherits SIGINT ignored, and Python then never turns it into KeyboardInterrupt.
    process = subprocess.Popen(client_command(*args), stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(out.glob("*.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted: done" in stderr
    finished = sorted(p.stem for p in out.glob("*.json"))
    assert 1 <= len(finished) < len(inputs)
    assert leftovers(out) == []
    for stem in finished:
        check_complete(out, stem)
    resumed = run_client(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert summary_count(resumed.stderr, "skipped") == len(finished)
    assert summary_count(resumed.stderr, "done") == len(inputs) - len(finished)
    assert leftovers(out) == []
    for path in inputs:
        check_complete(out, path.stem)


@pytest.mark.slow
def test_in_process_model_dir_writes_what_the_server_writes(server, tiny_v2_dir, tmp_path):
    make_mixed_folder(tmp_path / "in")
    (tmp_path / "in/broken.png").unlink()
    remote, local = tmp_path / "remote", tmp_path / "local"
    served = run_client("--url", server.url, "--max-tokens", "6", "-o", str(remote), str(tmp_path / "in"))
    assert served.returncode == 0, served.stderr
    inproc = run_client("--model_dir", tiny_v2_dir, "--device", "cpu", "--max-tokens", "6", "-o", str(local),
                        str(tmp_path / "in"))
    assert inproc.returncode == 0, inproc.stderr
    for stem in ("a", "sub/b", "sub/deeper/doc"):
        # Greedy decoding of the same checkpoint: the same text, blocks and token counts, with or without a server.
        assert check_complete(local, stem)["pages"] == check_complete(remote, stem)["pages"]


def test_wrong_model_or_unreachable_server_stops_before_any_file(server, tmp_path):
    make_images(tmp_path / "in", 2)
    before = metric(server.url, PROMPT_TOKENS)
    wrong = run_client("--url", server.url, "--model", "no-such-model", "-o", str(tmp_path / "out"),
                       str(tmp_path / "in"))
    assert wrong.returncode == 2 and "no-such-model" in wrong.stderr and "HTTP 404" in wrong.stderr
    down = run_client("--url", f"http://127.0.0.1:{free_port()}", "--retries", "1", "-o", str(tmp_path / "out"),
                      str(tmp_path / "in"))
    assert down.returncode == 1 and "ConnectError" in down.stderr and "gave up after 1 retries" in down.stderr
    assert metric(server.url, PROMPT_TOKENS) == before and not (tmp_path / "out").exists()


def test_a_failed_pdf_page_is_named_and_its_document_not_written(server, tmp_path):
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    small = Image.new("RGB", (300, 380), "white")
    # 2300 x 2300 points render to 4600 x 4600 = 21 M pixels at 144 DPI, over this server's 20 M pixel limit
    huge = Image.new("1", (2300, 2300), 1)
    small.save(folder / "big.pdf", format="PDF", save_all=True, append_images=[huge, small])
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n not really a pdf")
    result = run_client("--url", server.url, "--max-tokens", "2", "-o", str(tmp_path / "out"), str(folder))
    assert result.returncode == 1, result.stderr
    assert "FAILED big.pdf: page 2: HTTP 400:" in result.stderr and "over the limit" in result.stderr
    assert "FAILED broken.pdf: not a readable PDF" in result.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
