"""bench/gpu_check.py runs end to end on CPU with tiny shapes (--tiny), writing every stage file, so the one GPU
run it gets cannot fail on something a CPU could have caught."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench import gpu_check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_gpu_check_tiny_writes_every_stage_file(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--tiny", "--family", "v2", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    stages = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in (*gpu_check.STAGES, "load")}
    assert all(s["ok"] for s in stages.values()), {n: s.get("error") for n, s in stages.items()}
    assert stages["versions"]["result"]["torch"] == __import__("torch").__version__
    for name in gpu_check.NEEDS_CUDA:
        assert stages[name]["skipped"] == "no CUDA"
    assert stages["sdpa_default"]["result"]["decode_masked_strided"] in {"math", "flash_attention",
                                                                         "efficient_attention", "cudnn_attention"}
    hit = stages["experts_hit"]["result"]
    assert hit["moe_layers"] >= 1 and 1 <= hit["distinct_mean_all_layers"] <= hit["experts_per_layer"]
    bench = stages["throughput"]["result"]["cudnn_off"]
    assert bench["c1"]["generated_tokens"] == 4 and bench["c2"]["generated_tokens"] == 8
    assert bench["speedup_c2_over_c1"] > 0
    graphs = stages["throughput"]["result"]["graphs_on"]  # on CPU: the padded-bucketed path graphs replay
    assert graphs["c2"]["generated_tokens"] == 8 and "unavailable on cpu" in graphs["runs"]
    assert "forward: padded" in graphs["decode"] and stages["throughput"]["result"]["graphs_over_eager_c2"] > 0
    identity = stages["graph_identity"]["result"]
    assert identity["identical"] and identity["requests_identical"] == 5, identity


def test_versions_name_the_wheel_to_carry(monkeypatch):
    import transformers

    monkeypatch.setattr(transformers, "__version__", "5.17.0")
    try:
        gpu_check.versions({})
    except gpu_check.VersionError as exc:
        assert "carry transformers==5.24.0" in str(exc)
    else:
        raise AssertionError("an old transformers must stop the check before any model is built")


def test_a_failing_stage_still_writes_its_file(tmp_path):
    ctx = {"device": "cpu", "out": str(tmp_path), "started": 0.0, "budget": 1e12}

    def broken(ctx):
        raise ValueError("boom")

    record = gpu_check.run_stage("broken", broken, ctx)
    written = json.loads((tmp_path / "broken.json").read_text())
    assert record["ok"] is False and written["error"] == "ValueError: boom"
