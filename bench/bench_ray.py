"""Ray Serve benchmark on the tiny checkpoint (needs the [ray] extra). Prints one JSON line:

- ready_s: `python -m predictor.ray_serve` started until /v1/models/<name> answers 200 (local Ray, no dashboard);
- tokens_per_s with 1 replica and with 2 replicas, same concurrency, same fixed-length requests, in one run, and
  their ratio (each replica runs with OMP_NUM_THREADS=1, so 2 replicas can use the machine's 2 cores);
- memory per replica (RSS and PSS of each ServeReplica process) and of all Ray processes (not this driver);
- CPU seconds each replica used during its phase (were both replicas busy, or starved by neighbours?).

    OMP_NUM_THREADS=1 python bench/bench_ray.py                 # ~3 min on 2 cores
    python bench/bench_ray.py --seconds 60 --concurrency 8 --tokens 32

Ratios are what to compare; on a shared machine the absolute numbers move with the neighbours' load.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ok(url: str, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def ready_time(model_dir: str) -> float:
    port = free_port()
    start = time.monotonic()
    cmd = [sys.executable, "-m", "predictor.ray_serve", "--model_dir", model_dir, "--device", "cpu",
           "--http_port", str(port), "--grpc_port", str(free_port()), "--max_replicas", "1"]
    proc = subprocess.Popen(cmd, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ok(f"http://127.0.0.1:{port}/v1/models/deepseek-ocr", 300)
        return time.monotonic() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


def chat_body(tokens: int) -> dict:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 200), "white")
    ImageDraw.Draw(image).text((10, 10), "Ray Serve benchmark", fill="black")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"model": "deepseek-ocr", "max_tokens": tokens, "min_tokens": tokens, "ngram_size": 0,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Free OCR."},
                                                      {"type": "image_url", "image_url": {"url": url}}]}]}


def load(url: str, body: dict, concurrency: int, seconds: float) -> float:
    """Generated tokens per second over `seconds` of `concurrency` closed-loop clients (completed requests only)."""
    deadline = time.monotonic() + seconds

    def client() -> int:
        done = 0
        with httpx.Client(timeout=600) as c:
            while time.monotonic() < deadline:
                r = c.post(f"{url}/v1/chat/completions", json=body)
                r.raise_for_status()
                if time.monotonic() <= deadline:
                    done += r.json()["usage"]["completion_tokens"]
        return done

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        total = sum(pool.map(lambda _: client(), range(concurrency)))
    return total / min(seconds, time.monotonic() - start)


def replicas() -> list:
    import psutil

    return [p for p in psutil.process_iter(["cmdline"])
            if any("ServeReplica:" in part for part in (p.info["cmdline"] or []))]


def replica_memory() -> list[dict]:
    out = []
    for p in replicas():
        info = p.memory_full_info()
        out.append({"rss_mib": round(info.rss / 2**20), "pss_mib": round(info.pss / 2**20)})
    return out


def cpu_seconds() -> dict[int, float]:
    return {p.pid: sum(p.cpu_times()[:2]) for p in replicas()}


def ray_total_mib(temp_dir: str) -> dict:
    import psutil

    rss = pss = 0
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if temp_dir in cmd or "ray::" in cmd:  # Ray's own processes, not this driver
            try:
                info = p.memory_full_info()
            except psutil.Error:
                continue
            rss, pss = rss + info.rss, pss + info.pss
    return {"rss_mib": round(rss / 2**20), "pss_mib": round(pss / 2**20)}


def throughput(model_dir: str, args: argparse.Namespace) -> dict:
    for k, v in ENV.items():
        os.environ[k] = v
    import ray
    from ray import serve

    from predictor.ray_serve import build

    temp_dir = tempfile.mkdtemp(prefix="raybench", dir="/tmp")
    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        url, body, result = f"http://127.0.0.1:{port}", chat_body(args.tokens), {}
        for n in (1, 2):
            app = build({"model_dir": model_dir, "device": "cpu", "min_replicas": n, "max_replicas": n,
                         "num_cpus": 1, "max_batch_size": args.concurrency, "max_queue": args.concurrency})
            serve.run(app, name="bench", route_prefix="/")
            load(url, body, n, 3)  # warm every replica
            before = cpu_seconds()
            result[f"tokens_per_s_{n}_replica{'s' if n > 1 else ''}"] = round(
                load(url, body, args.concurrency, args.seconds), 1)
            # CPU seconds each replica used during the load: both replicas busy, or one idle?
            result[f"replica_cpu_s_{n}"] = [round(t - before.get(pid, 0.0), 1) for pid, t in cpu_seconds().items()]
            result[f"replica_memory_{n}"] = replica_memory()
            result[f"ray_total_memory_{n}"] = ray_total_mib(temp_dir)
            serve.delete("bench")
        result["ratio_2_vs_1"] = round(result["tokens_per_s_2_replicas"] / result["tokens_per_s_1_replica"], 2)
        return result
    finally:
        serve.shutdown()
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="load per phase")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32, help="generated tokens per request (fixed)")
    args = parser.parse_args()
    from predictor.testing.tiny import build as build_tiny

    model_dir = build_tiny(tempfile.mkdtemp(prefix="tiny-ray-bench"), "v2")
    result = {"ready_s": round(ready_time(model_dir), 1)}
    result.update(throughput(model_dir, args))
    result.update({"concurrency": args.concurrency, "tokens": args.tokens, "seconds": args.seconds,
                   "cpus": os.cpu_count(), "loadavg_1m_at_end": round(os.getloadavg()[0], 1)})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
