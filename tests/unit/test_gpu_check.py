"""bench/gpu_check.py runs end to end on CPU with tiny shapes, so it is ready for the first GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_and_prints_one_json_line():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--tiny", "--family", "v2"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["versions"]["torch"] == __import__("torch").__version__
    assert result["sdpa"]["decoder_decode_b32"]["backends"]["MATH"] == "ok"
    probe = result["experts"]["results"]
    assert set(probe) == {"6", "48"} and all(r["ok"] for r in probe["6"].values() if "ok" in r)
    assert result["experts"]["plan"].startswith("<=6 rows:")
    step = result["decode_step"]
    assert step["rows"] == 4 and step["steps"] == 10 and step["split"]["steps"] == 10
    assert step["cpu_ops"] > 0 and step["kv_cache"]["slots"] == 4
    bench = result["throughput"]
    assert bench["c1"]["generated_tokens"] == 16 and bench["c2"]["generated_tokens"] == 16
    assert bench["speedup_c2_over_c1"] > 0
