#!/usr/bin/env bash
# `make run`: serve the real model when it can be had (HF cache or hub), else say so loudly and serve the
# offline demo (a tiny random DeepSeek-OCR-2: the API is real, the text it returns is meaningless).
set -euo pipefail
MODEL_ID="${MODEL_ID:-deepseek-ai/DeepSeek-OCR}"
PORT="${PORT:-8080}"
GRPC_PORT="${GRPC_PORT:-8081}"
PYTHON="${PYTHON:-python3}"

if "$PYTHON" - "$MODEL_ID" <<'PY'
import sys
from huggingface_hub import HfApi, snapshot_download

repo = sys.argv[1]
try:
    snapshot_download(repo, local_files_only=True)  # already downloaded
except Exception:
    try:
        HfApi().model_info(repo, timeout=10)
    except Exception as exc:
        print(f"cannot reach {repo} on the HuggingFace hub: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
PY
then
  exec "$PYTHON" -m predictor --model_id "$MODEL_ID" --http_port "$PORT" --grpc_port "$GRPC_PORT" "$@"
fi
cat >&2 <<MSG
===============================================================================================
 The HuggingFace hub cannot be reached, so $MODEL_ID cannot be downloaded here.
 Serving the OFFLINE DEMO instead: a tiny random DeepSeek-OCR-2. Every API works; the text is random.
 For the real model: download it where the hub is reachable and run
     python -m predictor --model_dir /path/to/checkpoint
===============================================================================================
MSG
exec make --no-print-directory demo-serve PORT="$PORT" GRPC_PORT="$GRPC_PORT"
