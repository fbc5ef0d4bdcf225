"""Replicas: sustained load scales 1 -> 2 and back to 1; a killed replica is replaced and serving resumes.

Autoscaling reacts within seconds here only because the test shortens Ray's intervals (conftest.RAY_ENV and the
delays below); the defaults are tens of seconds up and minutes down.
"""

from __future__ import annotations

import base64
import threading
import time

import httpx
import pytest

from tests.builders import chat_body, image_part, text_part
from tests.conftest import png_bytes
from tests.ray.conftest import deploy, replicas, wait_until

APP, PREFIX = "scaling", "/scaling"
DATA_URL = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
FAST_AUTOSCALING = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 1, "upscale_delay_s": 1,
                    "downscale_delay_s": 5, "look_back_period_s": 2, "metrics_interval_s": 0.5}


def _chat(max_tokens: int) -> dict:
    return chat_body(text_part("Free OCR."), image_part(DATA_URL), max_tokens=max_tokens, min_tokens=max_tokens,
                     ngram_size=0)


@pytest.fixture(scope="module")
def scaling_app(ray_cluster, tiny_v2_dir):
    from ray import serve

    args = {"model_dir": tiny_v2_dir, "device": "cpu", "max_batch_size": 4, "max_queue": 16, "num_cpus": 0.5}
    deploy(APP, PREFIX, args, autoscaling_config=FAST_AUTOSCALING)
    assert replicas(APP) == 1
    yield ray_cluster.url + PREFIX
    serve.delete(APP)


def _load(url: str, stop: threading.Event, codes: list[int]) -> None:
    with httpx.Client(timeout=300) as client:
        while not stop.is_set():
            codes.append(client.post(f"{url}/v1/chat/completions", json=_chat(40)).status_code)


def test_sustained_load_scales_to_two_replicas_and_back_to_one(scaling_app):
    stop, codes = threading.Event(), []
    workers = [threading.Thread(target=_load, args=(scaling_app, stop, codes), daemon=True) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        up = wait_until(lambda: replicas(APP) == 2, 90, "a second replica under load")
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=300)
    down = wait_until(lambda: replicas(APP) == 1 and replicas(APP, "STOPPING") == 0, 90, "back to one replica")
    assert codes and set(codes) == {200}, codes
    print(f"1->2 replicas {up:.1f} s after load started; back to 1 {down:.1f} s after it ended")


def test_a_killed_replica_is_replaced_and_requests_succeed(scaling_app):
    import ray

    (name,) = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
               if a["namespace"] == "serve" and a["name"].startswith(f"SERVE_REPLICA::{APP}#")]
    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    start = time.monotonic()

    def replaced() -> bool:
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                 if a["name"].startswith(f"SERVE_REPLICA::{APP}#")]
        return replicas(APP) == 1 and name not in names

    wait_until(replaced, 120, "a new replica")
    r = httpx.post(f"{scaling_app}/v1/chat/completions", json=_chat(3), timeout=120)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
    print(f"replica replaced and serving {time.monotonic() - start:.1f} s after the kill")
