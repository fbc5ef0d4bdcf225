#!/usr/bin/env bash
# One command for the GPU machine: install the carried wheels (if any), run bench/gpu_check.py, results in $OUT.
#   run(command="bash bench/gpu_check.sh", carry=[".whl"], timeout_s=540)
# Every stage writes $OUT/<stage>.json as it finishes; versions.json names the wheels to carry when one is missing.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    > "$OUT/pip.txt" 2>&1 || { echo "installing the carried wheels failed: see pip.txt"; cat "$OUT/pip.txt"; exit 3; }
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/nvidia-smi.txt" 2>&1 || true
# 450 s for the check itself: with start-up and transfers the run stays under 8 minutes, so a rerun fits in 15.
timeout 450 python3 bench/gpu_check.py --out "$OUT" --budget 360 "$@" 2>&1 | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
