"""Batch client, no server: a line per file when stderr is not a terminal, a tqdm bar when it is, the summary."""

from __future__ import annotations

import io

from predictor.client.progress import Progress, Stats


def test_lines_per_file_and_summary():
    stream = io.StringIO()
    stats = Stats(files=3, ignored=1)
    progress = Progress(stats, stream)
    assert progress.bar is None  # a StringIO is not a terminal
    progress.set_total(4)
    progress.file_skipped("old.png")
    for _ in range(3):
        progress.page_done()
    stats.add_usage({"prompt_tokens": 30, "completion_tokens": 6})
    progress.retried("HTTP 429")
    progress.file_done("sub/doc.pdf", 3, 1.25)
    progress.file_failed("bad.png", "HTTP 400: not an image")
    progress.close()
    assert stream.getvalue().splitlines() == ["[1/3] skipped old.png (outputs exist)",
                                              "[2/3] done sub/doc.pdf (3 pages, 1.2 s)",
                                              "[3/3] FAILED bad.png: HTTP 400: not an image"]
    summary = stats.summary()
    assert summary.startswith("done 1, skipped 1 (outputs exist), failed 1, not images or PDFs 1 | pages 3 | "
                              "tokens 36 (prompt 30, completion 6) | retries 1 |")
    assert summary.splitlines()[1] == "failed: bad.png: HTTP 400: not an image"
    assert "run the same command again" in stats.summary(interrupted=True)


def test_bar_counts_pages_and_shows_files_and_retries():
    stream = io.StringIO()
    stats = Stats(files=2)
    progress = Progress(stats, stream, bar=True)
    progress.note("before the pages are counted")
    assert progress.bar is None
    progress.set_total(5)
    for _ in range(2):
        progress.page_done()
    progress.retried("HTTP 503")
    progress.file_done("a.png", 1, 0.5)
    progress.file_failed("b.pdf", "page 2: HTTP 400: bad", pages_not_done=3)
    assert progress.bar.n == 2 and progress.bar.total == 2  # the failed file's pages leave the total
    progress.close()
    output = stream.getvalue()
    assert output.startswith("before the pages are counted\n")
    assert "files 2/2, failed 1, retries 1" in output and "2/5" in output
    assert "[2/2] FAILED b.pdf: page 2: HTTP 400: bad" in output and "done a.png" not in output
