"""Measure the CPU a saturated predictor uses: the figure the chart's calibrated HPA target is derived from.

Builds the tiny random DeepSeek-OCR-2 checkpoint, starts `python -m predictor` on it, keeps CONCURRENCY requests in
flight (more than --max_batch_size, so a queue always waits), and reads the server's CPU time from /proc over a
steady window. Prints one JSON line: busy cores (utime+stime / wall), per-thread top users, in-flight gauge, load.

    OMP_NUM_THREADS=1 python scripts/saturation_cpu.py [--seconds 60] [--concurrency 16] [--max-tokens 64]

OMP_NUM_THREADS=1 keeps the tiny model's math in the engine thread, as on a GPU where the engine thread only
launches kernels and waits: what is measured is the process's own work (HTTP, decoding images, preprocessing, the
engine loop), not CPU matrix multiplies that a GPU deployment never runs.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _threads(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[f"{name}/{task.name}"] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def _thread_names(pid: int) -> dict[str, str]:
    """OS thread id -> Python thread name, from `py-spy dump` when py-spy is installed (else ids only)."""
    spy = shutil.which("py-spy") or os.environ.get("PY_SPY", "")
    if not spy:
        return {}
    out = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60).stdout
    return dict(re.findall(r'^Thread (\d+) \([^)]*\): "([^"]+)"', out, re.M))


def _png() -> str:
    image = Image.new("RGB", (640, 200), "white")
    ImageDraw.Draw(image).text((10, 10), "Hello DeepSeek-OCR", fill="black")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _load(url: str, body: dict, stop: threading.Event, counts: list[int]) -> None:
    with httpx.Client(timeout=600) as client:
        while not stop.is_set():
            r = client.post(url, json=body)
            counts[0 if r.status_code == 200 else 1] += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window, after a warm-up")
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-batch-size", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--device", default="cpu", help="cpu | cuda (pass --model-dir for a real checkpoint on a GPU)")
    ap.add_argument("--model-dir", default="", help="checkpoint to serve; default: build the tiny random one")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="saturation-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.setdefault("OMP_NUM_THREADS", "1")
    model_dir = a.model_dir or str(work / "tiny")
    if not a.model_dir:
        subprocess.run([sys.executable, "-m", "predictor.testing.tiny", "--family", "v2", model_dir],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    port = _free_port()
    log = open(work / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen(
        [sys.executable, "-m", "predictor", "--model_dir", model_dir, "--device", a.device,
         "--http_port", str(port), "--grpc_port", str(_free_port()), "--max_batch_size", str(a.max_batch_size),
         "--max_new_tokens", str(a.max_tokens), "--default_max_tokens", str(a.max_tokens)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/v1/models/deepseek-ocr", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("server not ready:\n" + (work / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        body = {"instances": [{"image": _png(), "max_tokens": a.max_tokens, "min_tokens": a.max_tokens}]}
        counts = [0, 0]
        workers = [threading.Thread(target=_load, args=(f"{base}/v1/models/deepseek-ocr:predict", body, stop, counts),
                                    daemon=True) for _ in range(a.concurrency)]
        for w in workers:
            w.start()
        time.sleep(a.warmup)
        print(f"measuring server pid {server.pid} for {a.seconds:.0f} s", file=sys.stderr, flush=True)
        cpu0, threads0, t0, done0 = _cpu_seconds(server.pid), _threads(server.pid), time.monotonic(), counts[0]
        gauges = []
        while time.monotonic() - t0 < a.seconds:
            time.sleep(2)
            metrics = httpx.get(f"{base}/metrics", timeout=10).text
            gauges += [float(line.split()[-1]) for line in metrics.splitlines()
                       if line.startswith("deepseek_ocr_requests_in_flight")]
        wall = time.monotonic() - t0
        cpu1, threads1, done1 = _cpu_seconds(server.pid), _threads(server.pid), counts[0]
        names = _thread_names(server.pid)
    finally:
        stop.set()
        server.kill()  # no drain: the figures are taken
        server.wait()
    per_thread = sorted(((round((threads1[k] - threads0.get(k, 0.0)) / wall, 3),
                          names.get(k.split("/")[1], k)) for k in threads1), reverse=True)
    print(json.dumps({
        "busy_cores": round((cpu1 - cpu0) / wall, 3),
        "window_s": round(wall, 1),
        "requests_done": done1 - done0,
        "errors": counts[1],
        "in_flight_mean": round(sum(gauges) / max(len(gauges), 1), 1),
        "top_threads": per_thread[:5],
        "device": a.device, "concurrency": a.concurrency, "max_batch_size": a.max_batch_size,
        "max_tokens": a.max_tokens,
        "omp_num_threads": env["OMP_NUM_THREADS"], "host_cores": os.cpu_count(), "loadavg": os.getloadavg(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
