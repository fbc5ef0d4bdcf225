"""`python -m predictor.ray_serve` on its own: starts a local Ray, serves, and on SIGTERM leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import httpx

from tests.ray.conftest import RAY_ENV, free_port, processes_mentioning, wait_until


def test_the_command_serves_and_stops_cleanly_on_sigterm(tiny_v2_dir, tmp_path):
    port, grpc_port = free_port(), free_port()
    ray_tmp = tempfile.mkdtemp(prefix="raycli", dir="/tmp")  # Ray's session dir: short, and ours to look for
    env = {**os.environ, **RAY_ENV, "RAY_TMPDIR": ray_tmp}
    log = tmp_path / "cli.log"
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "predictor.ray_serve", "--model_dir", tiny_v2_dir,
                                 "--device", "cpu", "--http_port", str(port), "--grpc_port", str(grpc_port),
                                 "--max_replicas", "1",
                                 "--num_cpus", "0.5"], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"{url}/v1/models/deepseek-ocr", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 180, "the command's application ready", poll=0.2)
        ready_s = time.monotonic() - start
        r = httpx.post(f"{url}/v2/models/deepseek-ocr/infer", timeout=120, json={
            "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [_b64()]}],
            "parameters": {"max_tokens": 3, "min_tokens": 3}})
        assert r.status_code == 200, r.text
        assert asyncio.run(_grpc_model_ready(f"127.0.0.1:{grpc_port}")) is True  # one app: no metadata needed
        assert processes_mentioning(ray_tmp), "the command's Ray runs under RAY_TMPDIR"
    finally:
        proc.send_signal(signal.SIGTERM)  # to the command only, as Kubernetes and `kill` do
        code = proc.wait(timeout=120)
    stopped_s = time.monotonic() - start - ready_s
    assert code == 0, log.read_text()[-3000:]
    wait_until(lambda: not processes_mentioning(ray_tmp), 30, "no Ray process of the command left")
    shutil.rmtree(ray_tmp, ignore_errors=True)
    print(f"ready {ready_s:.1f} s after start; exited {stopped_s:.1f} s after being ready (incl. one request)")


async def _grpc_model_ready(target: str) -> bool:
    from kserve import InferenceGRPCClient

    client = InferenceGRPCClient(target)
    try:
        return await client.is_model_ready("deepseek-ocr")
    finally:
        await client.close()


def _b64() -> str:
    import base64

    from tests.conftest import png_bytes

    return base64.b64encode(png_bytes()).decode()


def test_rays_own_serve_run_deploys_the_builder_with_string_arguments(ray_cluster, tiny_v2_dir):
    """`serve run predictor.ray_serve:build key=value ...`: what docs/RAY.md shows, on the tier's Ray."""
    from ray import serve

    serve_cli = shutil.which("serve", path=os.path.dirname(sys.executable)) or "serve"
    cmd = [serve_cli, "run", "--address", ray_cluster.gcs_address, "--non-blocking", "--name", "cli",
           "--route-prefix", "/cli", "predictor.ray_serve:build", f"model_dir={tiny_v2_dir}", "device=cpu",
           "max_batch_size=2", "served_model_names=ocr-cli", "num_cpus=0.5", "max_replicas=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **RAY_ENV})
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        wait_until(lambda: str(getattr(serve.status().applications.get("cli"), "status", "")).endswith("RUNNING"),
                   180, "the serve-run application RUNNING")
        models = httpx.get(f"{ray_cluster.url}/cli/v1/models", timeout=30).json()
        assert [m["id"] for m in models["data"]] == ["deepseek-ocr", "ocr-cli", "deepseek-ai/DeepSeek-OCR-2"]
        r = httpx.post(f"{ray_cluster.url}/cli/v1/models/ocr-cli:predict", timeout=120,
                       json={"instances": [{"image": _b64(), "max_tokens": 2, "min_tokens": 2}]})
        assert r.status_code == 200 and r.json()["predictions"][0]["usage"]["completion_tokens"] == 2
    finally:
        serve.delete("cli")
