"""A checkpoint that fails to load fails the deployment with its reason, quickly, and the command exits non-zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.ray.conftest import free_port

REASON = "unsupported checkpoint"


@pytest.fixture(scope="module")
def bad_checkpoint(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("bad-ckpt")
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    return str(path)


def test_a_failed_load_fails_the_deployment_with_the_reason(ray_cluster, bad_checkpoint):
    from ray import serve

    from predictor.ray_serve import build

    start = time.monotonic()
    with pytest.raises(RuntimeError) as failed:
        serve.run(build({"model_dir": bad_checkpoint, "device": "cpu", "num_cpus": 0.5}), name="bad",
                  route_prefix="/bad")
    took = time.monotonic() - start
    try:
        status = serve.status().applications["bad"]
        assert str(status.status) in ("DEPLOY_FAILED", "ApplicationStatus.DEPLOY_FAILED")
        messages = status.message + "".join(d.message for d in status.deployments.values())
        assert REASON in messages, messages
        assert "Deploying application bad failed" in str(failed.value)
    finally:
        serve.delete("bad")
    assert took < 120
    print(f"deployment failed after {took:.1f} s")


def test_the_command_exits_non_zero_with_the_reason(ray_cluster, ocr_app, bad_checkpoint):
    cmd = [sys.executable, "-m", "predictor.ray_serve", "--ray_address", ray_cluster.gcs_address,
           "--model_dir", bad_checkpoint, "--device", "cpu", "--http_port", str(free_port()), "--num_cpus", "0.5",
           "--app_name", "cmd", "--route_prefix", "/cmd"]  # "/" belongs to the tier's main application
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ})
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "deployment failed" in proc.stderr and REASON in proc.stderr and "DEPLOY_FAILED" in proc.stderr
    from ray import serve

    assert "cmd" not in serve.status().applications  # the command removed its application
    assert "ocr" in serve.status().applications  # and left the cluster's other applications alone


def test_bad_options_exit_2_before_ray_starts(tmp_path):
    for argv, message in ((["--max_replicas", "0"], "--max_replicas"),
                          (["--model_dir", str(tmp_path)], "has no config.json"),
                          (["--min_replicas", "3", "--max_replicas", "2"], "--min_replicas")):
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "predictor.ray_serve", *argv], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
        assert "Started a local Ray instance" not in proc.stderr
        print(f"{argv}: exit 2 after {time.monotonic() - start:.1f} s")
