"""Peak memory of the server for the PDF attacks that once took it to several GB (Linux /proc only)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.e2e import catalogue as cat
from tests.e2e.server import Server

BOUND_MB = 2048  # peak RSS over idle


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _reset_peak(pid: int) -> bool:
    """Writing 5 to clear_refs resets VmHWM (Linux 4.0+), so the peak below is this section's own."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _pdf_url(data: bytes) -> dict:
    return {"type": "image_url", "image_url": {"url": "data:application/pdf;base64," + base64.b64encode(data).decode()}}


def _cases() -> list[tuple[str, str, dict, int]]:
    """(name, path, body, expected status)."""
    pages32 = base64.b64encode(cat.blank_pdf(32)).decode()
    huge4 = cat.blank_pdf(4, (14400, 14400))
    huge32 = cat.blank_pdf(32, (14400, 14400))
    return [
        ("16 v1 instances of a 32-page PDF", cat.V1,
         {"instances": [{"image": pages32, "max_tokens": 2}] * 16}, 400),
        ("OpenAI, 8 x 32-page PDFs", cat.CHAT, cat._chat([_pdf_url(cat.blank_pdf(32))] * 8), 400),
        (f"{len(huge4)}-byte PDF of 4 pages of 200x200 inches", cat.V1,
         {"instances": [{"image": base64.b64encode(huge4).decode(), "max_tokens": 2}]}, 200),
        (f"{len(huge32)}-byte PDF of 32 pages of 200x200 inches", cat.CHAT, cat._chat([_pdf_url(huge32)]), 400),
        ("one 32-page letter-size PDF (accepted)", cat.V1,
         {"instances": [{"image": pages32, "max_tokens": 2}]}, 200),
    ]


def run(srv: Server) -> Iterator[tuple[str, str, bool]]:
    pid = srv.process.pid
    assert cat.good_request(srv.url) == 200
    idle_kb = _status_kb(pid, "VmRSS")
    reset = _reset_peak(pid)
    peak_kb = idle_kb
    for name, path, body, status in _cases():
        started = time.monotonic()
        r = httpx.post(srv.url + path, json=body, timeout=600)
        peak_kb = max(peak_kb, _status_kb(pid, "VmRSS"))
        yield (f"pdf: {name}", f"{r.status_code} in {time.monotonic() - started:.1f} s", r.status_code == status)
    if reset:
        peak_kb = max(peak_kb, _status_kb(pid, "VmHWM"))
    over_mb = (peak_kb - idle_kb) / 1024
    how = "VmHWM after reset" if reset else "VmRSS sampled after each request"
    yield ("pdf: idle RSS", f"{idle_kb / 1024:.0f} MB", True)
    yield ("pdf: peak RSS over idle", f"{over_mb:.0f} MB ({how}; bound {BOUND_MB} MB)", over_mb < BOUND_MB)
