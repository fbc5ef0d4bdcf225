#!/usr/bin/env bash
# make image-test (not part of make test): build the Containerfile from a local stand-in base, start it with a tiny
# random checkpoint mounted read-only, and expect 200 from the model readiness route on loopback. The result and
# date are appended to docs/IMAGE-TEST.md.
#
# No registry can be pulled from here, so the NGC base is replaced by a debootstrapped Debian bookworm with python
# (cached as localhost/deepseek-ocr-standin:bookworm), and the CPU torch wheel the host already has is passed in
# (TORCH_SPEC). Like NGC, the stand-in exports PIP_CONSTRAINT=/etc/pip/constraint.txt, pinning packages below what
# kserve needs (a plain `pip install` there fails with ResolutionImpossible): the build passes only because the
# Containerfile lifts that constraint for its install, and the script checks the pinned versions were overridden.
# The rest of the Containerfile runs unchanged; pip inside the build reaches PyPI.
# Traffic to the container stays on 127.0.0.1. Needs root (buildah/podman from apt). Takes ~5-10 min cold.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STANDIN=localhost/deepseek-ocr-standin:bookworm
NGC_LIKE=localhost/deepseek-ocr-standin:bookworm-ngc-constraint
# what NGC's /etc/pip/constraint.txt does to us: pins below kserve 0.21's protobuf>=6.33.5 and psutil<6
NGC_PINS=$'protobuf==4.25.3\npsutil==7.0.0\npillow==10.4.0'
IMAGE=localhost/deepseek-ocr-predictor:image-test
NAME=deepseek-ocr-image-test
PORT="${IMAGE_TEST_PORT:-18080}"
MODEL_NAME=deepseek-ocr
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
PYTHON="${PYTHON:-python3}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
DOC=docs/IMAGE-TEST.md
LOG="$(mktemp)"
WORK="$(mktemp -d)"
start=$SECONDS

log() { printf '[image-test] %s\n' "$*" | tee -a "$LOG" >&2; }
cleanup() {
  podman rm -f "$NAME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- tools ---------------------------------------------------------------------------------------------------------
if ! command -v buildah >/dev/null || ! command -v podman >/dev/null || ! command -v runc >/dev/null \
   || ! command -v debootstrap >/dev/null; then
  log "installing buildah podman runc debootstrap (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah podman runc debootstrap >/dev/null
fi
# crun on this kernel fails with "cgroups in hybrid mode"; podman's default nofile rlimit is not permitted here.
if [[ ! -f /etc/containers/containers.conf ]] || ! grep -q 'runtime = "runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
fi

# --- stand-in base image (cached) ----------------------------------------------------------------------------------
if ! podman image exists "$STANDIN"; then
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  log "debootstrapping the stand-in base from $mirror"
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,python-is-python3 \
    bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; exit 1; }
  rm -f "$WORK"/rootfs/usr/lib/python3*/EXTERNALLY-MANAGED
  tar -C "$WORK/rootfs" -c . | podman import - "$STANDIN" >/dev/null
  rm -rf "$WORK/rootfs"
fi

# --- NGC-like global pip constraint on top (rebuilt each run: seconds) ------------------------------------------------
mkdir -p "$WORK/ngc"
printf '%s\n' "$NGC_PINS" > "$WORK/ngc/constraint.txt"
printf 'FROM %s\nCOPY constraint.txt /etc/pip/constraint.txt\nENV PIP_CONSTRAINT=/etc/pip/constraint.txt\n' "$STANDIN" \
  > "$WORK/ngc/Containerfile"
buildah bud --pull=never -q -f "$WORK/ngc/Containerfile" -t "$NGC_LIKE" "$WORK/ngc" >/dev/null
log "stand-in base $NGC_LIKE: PIP_CONSTRAINT=$(podman run --rm "$NGC_LIKE" sh -c 'echo $PIP_CONSTRAINT'), pins: $(echo $NGC_PINS)"

# --- the CPU torch wheel, as the host installs it (local wheel cache or PyPI) -----------------------------------------
mkdir -p "$WORK/wheels"
"$PYTHON" -m pip download -q --no-deps -d "$WORK/wheels" "torch==$TORCH_VERSION" 2>>"$LOG"
wheel="$(cd "$WORK/wheels" && ls torch-*.whl | head -1)"
case "$wheel" in *+cpu*|*cpu*) ;; *) log "warning: $wheel is not a +cpu wheel; the image will be large";; esac
log "torch for the stand-in: $wheel"

# --- build ---------------------------------------------------------------------------------------------------------
log "building $IMAGE from $NGC_LIKE"
build_start=$SECONDS
buildah bud --pull=never --layers \
  -v "$CA_BUNDLE:$CA_BUNDLE:ro" -v "$WORK/wheels:/wheels:ro" \
  --build-arg BASE_IMAGE="$NGC_LIKE" --build-arg TORCH_SPEC="/wheels/$wheel" \
  -f Containerfile -t "$IMAGE" . 2>&1 | tee -a "$LOG" \
  | grep -E '^(STEP|COMMIT|torch |base pip constraint|Successfully)|error|Error' || true
podman image exists "$IMAGE" || { log "build failed"; tail -40 "$LOG"; exit 1; }
build_s=$((SECONDS - build_start))
size="$(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.2f GB", $1/1e9}')"
log "built in ${build_s} s, $size"
# the base's pins were overridden for our layer, and the image still carries the base's PIP_CONSTRAINT
versions="$(podman run --rm --entrypoint python "$IMAGE" -c \
  'import importlib.metadata as m, os; print(*(f"{p}=={m.version(p)}" for p in ("protobuf", "psutil", "pillow")), os.environ.get("PIP_CONSTRAINT"))')"
log "in the image: $versions"
lifted=yes
for pin in $NGC_PINS; do [[ " $versions " == *" $pin "* ]] && lifted=no; done
[[ "$versions" == *" /etc/pip/constraint.txt" ]] || lifted=no

# --- tiny checkpoint -----------------------------------------------------------------------------------------------
ckpt="$WORK/tiny"
HF_HUB_OFFLINE=1 PYTHONPATH="$ROOT" "$PYTHON" -m predictor.testing.tiny --family v2 "$ckpt" >>"$LOG" 2>&1
chmod -R a+rX "$WORK"
log "tiny checkpoint: $(du -sh "$ckpt" | cut -f1)"

# --- run as the chart does: non-root, read-only root fs, writable caches/tmp, no capabilities ------------------------
podman rm -f "$NAME" >/dev/null 2>&1 || true
podman run -d --name "$NAME" -p "127.0.0.1:$PORT:8080" \
  --read-only --tmpfs /tmp:rw,mode=1777 --tmpfs /cache/huggingface:rw,mode=1777 --tmpfs /cache/torch:rw,mode=1777 \
  --cap-drop ALL --security-opt no-new-privileges --shm-size 1g \
  -e HF_HUB_OFFLINE=1 -v "$ckpt:/mnt/models:ro" \
  "$IMAGE" --model_dir /mnt/models --model_name "$MODEL_NAME" --device cpu --dtype float32 --http_port 8080 \
  --max_new_tokens 16 --default_max_tokens 16 \
  >/dev/null
log "user in the container: $(podman exec "$NAME" id 2>/dev/null || echo '?')"

run_start=$SECONDS
url="http://127.0.0.1:$PORT/v1/models/$MODEL_NAME"
deadline=$((SECONDS + ${IMAGE_TEST_TIMEOUT:-600}))
code=000
while (( SECONDS < deadline )); do
  code="$(curl -s -o "$WORK/ready.json" -w '%{http_code}' "$url" || true)"
  [[ "$code" == 200 ]] && break
  if [[ "$(podman inspect -f '{{.State.Running}}' "$NAME")" != true ]]; then log "container exited"; break; fi
  sleep 3
done
ready_s=$((SECONDS - run_start))
live="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/health/live" || true)"
log "GET /v1/models/$MODEL_NAME -> $code ($(head -c 300 "$WORK/ready.json" 2>/dev/null)); GET /v2/health/live -> $live"
# one OCR request (a 48x20 PNG reading "OCR"; the tiny model's text is random) and the autoscaling gauge
png='iVBORw0KGgoAAAANSUhEUgAAADAAAAAUCAAAAADuVOF7AAAA0klEQVR42mP8z0AaYGIYsRrmG1saL2RgmG1k7/2YgYHLwd7oIE4d/////7/D+v3/99a7dzl++7/N6f9//v//L+n+xwEY/v///9/52P///4+6uB3///9/6q///P///xPCq0Hq+////79LSf+AiPH//78jBJcGFoTbGP9CWb8cft+4itfTWucYGBjOaatdYGD4H8/AwHbgaPkCvJ7eaf3h/3vrPStcfvxfFv7/P////+cC8TrJ7Ykj+69cZ4bbxqJiUxkYGBgY1C/9wxFDjKOplQgAANpexFP+v7A7AAAAAElFTkSuQmCC'
pred="000"
if [[ "$code" == 200 ]]; then
  pred="$(curl -s --max-time 300 -o "$WORK/pred.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"instances\": [{\"image\": \"$png\"}]}" "$url:predict" || true)"
fi
log "POST /v1/models/$MODEL_NAME:predict -> $pred ($(head -c 300 "$WORK/pred.json" 2>/dev/null))"
gauge="$(curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^deepseek_ocr_requests_in_flight' | head -1 || true)"
log "GET /metrics: ${gauge:-deepseek_ocr_requests_in_flight MISSING}"
podman logs "$NAME" 2>&1 | tail -25 > "$WORK/container.log" || true

result=FAILED
[[ "$code" == 200 && "$pred" == 200 && -n "$gauge" && "$lifted" == yes ]] && result=PASSED
{
  echo
  echo "## $(date -u +%Y-%m-%d) $(date -u +%H:%M) UTC: $result"
  echo
  echo "- host: $(uname -m), $(nproc) cores; $(buildah --version); $(podman --version)"
  echo "- base: \`$NGC_LIKE\` (debootstrapped Debian bookworm, python $(podman run --rm "$STANDIN" python3 -c 'import platform; print(platform.python_version())' 2>/dev/null), NGC-like \`PIP_CONSTRAINT=/etc/pip/constraint.txt\` pinning $(echo $NGC_PINS)), TORCH_SPEC=\`$wheel\`"
  echo "- base constraint lifted for our layer: **$lifted** (in the image: $versions)"
  echo "- image: \`$IMAGE\`, $size, build ${build_s} s"
  echo "- run: non-root, \`--read-only\`, tmpfs /tmp and caches, \`--cap-drop ALL\`, tiny DeepSeek-OCR-2 checkpoint at /mnt/models (ro), \`--device cpu\`"
  echo "- \`GET http://127.0.0.1:$PORT/v1/models/$MODEL_NAME\` -> **$code** ${ready_s} s after start; \`GET /v2/health/live\` -> $live"
  echo "- \`POST /v1/models/$MODEL_NAME:predict\` (48x20 PNG) -> $pred; \`/metrics\` has \`${gauge%% *}\`"
  echo
  echo '```text'
  grep '^\[image-test\]' "$LOG" | grep -v 'installing\|debootstrapping'
  echo "--- last container log lines ---"
  cat "$WORK/container.log"
  echo '```'
} >> "$DOC"
log "$result in $((SECONDS - start)) s; recorded in $DOC"
[[ "$result" == PASSED ]]
