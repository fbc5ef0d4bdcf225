"""KServe v1, v2 REST and v2 gRPC against a real server process, with kserve's own clients."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import threading
import time

import httpx
import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

from tests.conftest import png_bytes
from tests.e2e.metrics_probe import generated
from tests.e2e.server import served

MODEL = "deepseek-ocr"
PNG = png_bytes()
B64 = base64.b64encode(PNG).decode()


def test_v1_predict_with_kserve_client(server):
    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v1"))
        try:
            ready = await client.is_model_ready(server.url, MODEL)
            body = {"instances": [{"image": B64, "max_tokens": 8, "min_tokens": 8},
                                  {"image": "data:image/png;base64," + B64, "prompt": "Free OCR.", "max_tokens": 4}]}
            result = await client.infer(server.url, body, model_name=MODEL)
        finally:
            await client.close()
        return ready, result

    ready, result = asyncio.run(call())
    assert ready is True
    predictions = result["predictions"]
    assert len(predictions) == 2
    first = predictions[0]
    assert isinstance(first["text"], str) and first["finish_reason"] == "length"
    assert first["usage"]["completion_tokens"] == 8
    assert first["usage"]["prompt_tokens"] == first["usage"]["image_tokens"] + 5  # BOS + "\nFree OCR."
    assert predictions[1]["usage"]["completion_tokens"] <= 4


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream", None])
def test_v1_raw_image_body(server, content_type):
    """curl --data-binary sends raw bytes; kserve alone parses octet-stream and untyped bodies as JSON."""
    headers = {"Content-Type": content_type} if content_type else {}
    r = httpx.post(f"{server.url}/v1/models/{MODEL}:predict", content=PNG, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    prediction = r.json()["predictions"][0]
    assert prediction["usage"]["image_tokens"] == 257 and prediction["finish_reason"] in ("stop", "length")


def test_v1_alias_route(server):
    r = httpx.post(f"{server.url}/v1/models/ocr-alias:predict", json={"instances": [{"image": B64, "max_tokens": 2}]},
                   timeout=60)
    assert r.status_code == 200, r.text


def test_v2_rest_infer_with_kserve_client(server):
    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            image = InferInput("image", [2], "BYTES", [B64, B64])
            prompt = InferInput("prompt", [1], "BYTES", ["Free OCR."])
            request = InferRequest(MODEL, infer_inputs=[image, prompt], parameters={"max_tokens": 6, "min_tokens": 6})
            return await client.infer(server.url, request, model_name=MODEL)
        finally:
            await client.close()

    response = asyncio.run(call())
    outputs = {o.name: o for o in response.outputs}
    assert response.id  # generated even though the client sent none
    assert len(outputs["text"].data) == 2 and all(isinstance(t, str) for t in outputs["text"].data)
    assert list(outputs["finish_reason"].data) == ["length", "length"]
    usage = np.array(outputs["usage"].data).reshape(2, 3)
    assert (usage[:, 1] == 6).all() and (usage[:, 2] == 257).all()


def test_v2_metadata_lists_inputs_and_outputs(server):
    meta = httpx.get(f"{server.url}/v2/models/{MODEL}", timeout=10).json()
    assert {i["name"] for i in meta["inputs"]} == {"image", "prompt"}
    assert {"text", "finish_reason", "blocks", "usage"} <= {o["name"] for o in meta["outputs"]}
    assert httpx.get(f"{server.url}/v2/models/{MODEL}/ready", timeout=10).status_code == 200


def test_v2_grpc_infer_raw_bytes(server):
    async def call():
        client = InferenceGRPCClient(server.grpc_target)
        try:
            image = InferInput("image", [1], "BYTES")
            image.set_data_from_numpy(np.array([PNG], dtype=np.object_))
            request = InferRequest(MODEL, infer_inputs=[image], parameters={"max_tokens": 5, "min_tokens": 5})
            return await client.infer(request)
        finally:
            await client.close()

    response = asyncio.run(call())
    outputs = {o.name: o for o in response.outputs}
    texts = outputs["text"].as_numpy()  # raw inputs are answered in raw_output_contents (kserve's and Triton's rule)
    assert len(texts) == 1
    assert list(outputs["finish_reason"].as_numpy()) in (["length"], [b"length"])


@pytest.mark.slow
def test_health_answers_during_long_generation(server):
    """Generation runs off the event loop: liveness/readiness answer while a long request is still running."""
    body = {"instances": [{"image": B64, "max_tokens": 3000, "min_tokens": 3000, "ngram_size": 0}]}
    finished = threading.Event()
    result: dict = {}

    def long_request():
        result["response"] = httpx.post(f"{server.url}/v1/models/{MODEL}:predict", json=body, timeout=300)
        finished.set()

    before = generated(server.url)
    thread = threading.Thread(target=long_request)
    thread.start()
    deadline = time.monotonic() + 60
    while generated(server.url) <= before and time.monotonic() < deadline:  # past prefill, into decoding
        time.sleep(0.02)
    timings = []
    for path in ("/v2/health/live", f"/v1/models/{MODEL}", "/", f"/v2/models/{MODEL}/ready"):
        start = time.perf_counter()
        r = httpx.get(server.url + path, timeout=10)
        timings.append(time.perf_counter() - start)
        assert r.status_code == 200
    answered_during = not finished.is_set()
    thread.join()
    assert result["response"].status_code == 200
    assert result["response"].json()["predictions"][0]["usage"]["completion_tokens"] == 3000
    assert answered_during, "health answered only after the generation finished"
    print(f"health latencies during generation (ms): {[round(t * 1000, 1) for t in timings]}")


BAD_V1 = [
    ({"instances": [{"image": "not base64!!"}]}, "instances[0].image"),
    ({"instances": [{"image": base64.b64encode(b"hello world").decode()}]}, "instances[0].image"),
    ({"instances": [{"image": base64.b64encode(PNG[: len(PNG) // 2]).decode()}]}, "instances[0].image"),
    ({"instances": []}, "instances"),
    ({"instances": "x"}, "instances"),
    ({"instances": [{"image": 5}]}, "instances[0].image"),
    ({"instances": [{"image": B64, "max_tokens": "ten"}]}, "max_tokens"),
    ({"instances": [{"image": B64, "max_tokens": 0}]}, "max_tokens"),
    ({"instances": [{"image": B64, "mode": "gundam"}]}, "mode"),
    ({"instances": [{"image": B64}] * 5}, "instances"),
    ({"instances": [{"image": B64, "colour": "red"}]}, "colour"),
    ({"instances": [{"prompt": "x"}]}, "instances[0].image"),
]


@pytest.mark.parametrize(("body", "field"), BAD_V1)
def test_v1_bad_input_is_400_naming_the_field(server, body, field):
    r = httpx.post(f"{server.url}/v1/models/{MODEL}:predict", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]


def test_v1_limits_pixels_and_body(server):
    huge = png_bytes((5000, 5000))
    r = httpx.post(f"{server.url}/v1/models/{MODEL}:predict",
                   json={"instances": [{"image": base64.b64encode(huge).decode()}]}, timeout=30)
    assert r.status_code == 400 and "pixel" in r.json()["error"]
    r = httpx.post(f"{server.url}/v1/models/{MODEL}:predict", content=b"x" * 9_000_000,
                   headers={"Content-Type": "image/png"}, timeout=30)
    assert r.status_code == 413
    # the server is still healthy and serves a good request
    good = httpx.post(f"{server.url}/v1/models/{MODEL}:predict",
                      json={"instances": [{"image": B64, "max_tokens": 2}]}, timeout=60)
    assert good.status_code == 200


def test_v2_bad_input_is_400(server):
    cases = [
        ({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["@@@"]}]}, "image[0]"),
        ({"inputs": [{"name": "picture", "shape": [1], "datatype": "BYTES", "data": [B64]}]}, "picture"),
        ({"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": [1.0]}]}, "image"),
        ({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [B64]}],
          "parameters": {"mode": "tiny"}}, "mode"),
    ]
    for body, field in cases:
        r = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", json=body, timeout=30)
        assert r.status_code == 400, (body, r.text)
        assert field in r.json()["error"], r.text


@pytest.mark.slow
def test_readiness_503_until_loaded_and_failed_load_exits(tiny_v2_dir, tmp_path):
    """config.json is a FIFO the server blocks on, so 'loading' lasts exactly as long as the test wants."""
    gated = tmp_path / "gated"
    gated.mkdir()
    for name in os.listdir(tiny_v2_dir):
        if name != "config.json":
            os.symlink(os.path.join(tiny_v2_dir, name), gated / name)
    os.mkfifo(gated / "config.json")
    with served(str(gated), str(tmp_path / "gated.log"), wait="live") as srv:
        assert httpx.get(f"{srv.url}/v1/models/{MODEL}", timeout=5).status_code == 503
        assert httpx.get(f"{srv.url}/v2/models/{MODEL}/ready", timeout=5).status_code == 503
        r = httpx.post(f"{srv.url}/v1/models/{MODEL}:predict", json={"instances": [{"image": B64}]}, timeout=5)
        assert r.status_code == 503
        part = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + B64}}
        chat = httpx.post(f"{srv.url}/v1/chat/completions", timeout=5,
                          json={"model": MODEL, "messages": [{"role": "user", "content": [part]}]})
        assert chat.status_code == 503 and int(chat.headers["retry-after"]) > 0
        assert chat.json()["error"]["code"] == "model_not_ready"
        health = httpx.get(f"{srv.url}/health", timeout=5)
        assert health.status_code == 503 and "retry-after" in health.headers
        with open(gated / "config.json", "w", encoding="utf-8") as fifo:  # unblocks the loader
            real = tmp_path / "config.json"
            shutil.copy(os.path.join(tiny_v2_dir, "config.json"), real)
            os.replace(real, gated / "config.json")  # later reads see a regular file
            with open(os.path.join(tiny_v2_dir, "config.json"), encoding="utf-8") as src:
                fifo.write(src.read())
        srv.wait_ready(timeout=120)
        assert httpx.get(f"{srv.url}/v1/models/{MODEL}", timeout=5).json()["ready"] is True

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with served(str(broken), str(tmp_path / "broken.log"), wait=None) as bad:
        assert bad.process.wait(timeout=120) != 0
        assert "unsupported checkpoint" in bad.log()


def test_bad_default_mode_fails_at_start_up_naming_the_flag(tiny_v2_dir, tmp_path):
    """A typo in --default_mode stops the server before weights load, instead of failing every request."""
    with served(tiny_v2_dir, str(tmp_path / "mode.log"), "--default_mode", "gundam", wait=None) as srv:
        assert srv.process.wait(timeout=120) != 0
        assert "--default_mode 'gundam'" in srv.log() and "dynamic, global" in srv.log()
        assert "Loading weights" not in srv.log()


def test_v1_streaming_sse(server):
    body = {"stream": True, "instances": [{"image": B64, "max_tokens": 10, "min_tokens": 10}]}
    with httpx.stream("POST", f"{server.url}/v1/models/{MODEL}:predict", json=body, timeout=60) as response:
        assert response.status_code == 200
        frames = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    final = json.loads(frames[-2])
    deltas = "".join(json.loads(f)["text"] for f in frames[:-2])
    assert final["usage"]["completion_tokens"] == 10 and deltas == final["text"]
    plain = httpx.post(f"{server.url}/v1/models/{MODEL}:predict", timeout=60,
                       json={"instances": [{"image": B64, "max_tokens": 10, "min_tokens": 10}]})
    assert plain.json()["predictions"][0]["text"] == final["text"]


def test_readme_curl_examples(server):
    """The README's curl lines, run as written (with $IMG and $JSON), and the common mistake of no header."""
    import subprocess

    script = f"""
set -e
printf '%s' '{B64}' > /tmp/readme-img.b64
IMG=$(cat /tmp/readme-img.b64); JSON='Content-Type: application/json'
curl -s {server.url}/v1/models/{MODEL}:predict -H "$JSON" -d '{{"instances": [{{"image": "'$IMG'", "max_tokens": 3}}]}}'
echo
curl -s {server.url}/v2/models/{MODEL}/infer -H "$JSON" -d '{{"inputs": [{{"name": "image", "shape": [1],
  "datatype": "BYTES", "data": ["'$IMG'"]}}], "parameters": {{"max_tokens": 3}}}}'
echo
curl -s {server.url}/v1/models/{MODEL}:predict -d '{{"instances": [{{"image": "'$IMG'"}}]}}'
"""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, check=True).stdout
    v1, v2, mistake = (json.loads(line) for line in out.strip().splitlines())
    assert v1["predictions"][0]["usage"]["completion_tokens"] <= 3
    assert {o["name"] for o in v2["outputs"]} >= {"text", "usage"}
    assert "Content-Type: application/json" in mistake["error"]


def test_start_up_log_says_what_runs(server):
    """Our own INFO lines reach the server log: the hardware choice, what is served, the KV cache once allocated."""
    r = httpx.post(f"{server.url}/v1/models/{MODEL}:predict", content=PNG, headers={"Content-Type": "image/png"},
                   timeout=60)
    assert r.status_code == 200
    with open(server.log_path, encoding="utf-8", errors="replace") as f:
        log = f.read()  # whole: server.log() keeps only the tail
    assert "hardware: device=cpu" in log and "prefill_workers=2" in log
    assert "serving DeepSeek-OCR as ['deepseek-ocr', 'ocr-alias', 'deepseek-ai/DeepSeek-OCR-2']" in log
    assert "KV cache:" in log
