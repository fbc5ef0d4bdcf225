"""What the user sees while the run goes: a ``tqdm`` bar on a terminal, one line per file otherwise (logs, CI),
and a summary at the end. Everything goes to stderr, so stdout stays free for scripts."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass
class Stats:
    files: int = 0
    pages_total: int = 0
    done: int = 0
    skipped: int = 0  # outputs already there (resume)
    ignored: int = 0  # neither an image nor a PDF
    failed: int = 0
    pages: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    looped: int = 0  # pages the server suspects of looping (flagged, not failed)
    review: int | None = None  # rows written to review.csv (with --review-below)
    failures: list[tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    work_started: float | None = None  # when pages began to be sent (after an in-process model load, say)

    def add_usage(self, usage: dict[str, Any]) -> None:
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or 0)

    def summary(self, interrupted: bool = False) -> str:
        now = time.monotonic()
        wall, work = now - self.started, now - (self.work_started or self.started)
        rate = f", {self.pages / work:.2f} pages/s" if work > 0 and self.pages else ""
        head = "interrupted: " if interrupted else ""
        lines = [f"{head}done {self.done}, skipped {self.skipped} (outputs exist), failed {self.failed}, "
                 f"not images or PDFs {self.ignored} | pages {self.pages} | tokens "
                 f"{self.prompt_tokens + self.completion_tokens} (prompt {self.prompt_tokens}, completion "
                 f"{self.completion_tokens}) | retries {self.retries} | {wall:.1f} s{rate}"]
        if self.looped or self.review is not None:
            review = f", to review {self.review} (review.csv)" if self.review is not None else ""
            lines.append(f"pages suspected of looping {self.looped}{review}")
        lines += [f"failed: {name}: {message}" for name, message in self.failures]
        if interrupted:
            lines.append("finished files are complete; run the same command again to do the rest")
        return "\n".join(lines)


class Progress:
    def __init__(self, stats: Stats, stream: IO[str] | None = None, bar: bool | None = None):
        self.stats = stats
        self.stream = stream or sys.stderr
        self.use_bar = self.stream.isatty() if bar is None else bar
        self.bar: Any = None  # made once the pages are counted, so its clock and rate start with the work

    def _postfix(self) -> None:
        s = self.stats
        self.bar.set_postfix_str(f"files {s.done + s.skipped + s.failed}/{s.files}, failed {s.failed}, "
                                 f"retries {s.retries}", refresh=False)

    def _line(self, text: str) -> None:
        s = self.stats
        message = f"[{s.done + s.skipped + s.failed}/{s.files}] {text}"
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def page_done(self) -> None:
        self.stats.pages += 1
        if self.bar is not None:
            self.bar.update(1)

    def retried(self, reason: str) -> None:
        self.stats.retries += 1
        if self.bar is not None:
            self._postfix()

    def file_done(self, name: str, pages: int, seconds: float) -> None:
        self.stats.done += 1
        self._file_event(f"done {name} ({pages} page{'s' if pages != 1 else ''}, {seconds:.1f} s)")

    def set_total(self, pages: int) -> None:
        self.stats.pages_total = pages
        self.stats.work_started = time.monotonic()
        if self.use_bar and pages:
            from tqdm import tqdm

            self.bar = tqdm(total=pages, unit="page", file=self.stream, dynamic_ncols=True)
            self._postfix()

    def file_skipped(self, name: str) -> None:
        self.stats.skipped += 1
        self._file_event(f"skipped {name} (outputs exist)")

    def file_failed(self, name: str, message: str, pages_not_done: int = 0) -> None:
        self.stats.failed += 1
        self.stats.failures.append((name, message))
        if self.bar is not None and pages_not_done:
            self.bar.total -= pages_not_done  # they will never be done: keep the ETA honest
        self._file_event(f"FAILED {name}: {message}")

    def _file_event(self, text: str) -> None:
        if self.bar is not None:
            self._postfix()
            self.bar.refresh()
            if not text.startswith("done"):
                self._line(text)
        else:
            self._line(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
