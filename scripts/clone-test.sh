#!/usr/bin/env bash
# make clone-test (part of make test): prove the repository stands alone. Clones the committed HEAD into an empty
# temporary folder (nothing beside it: no sibling folders, no caches, no .venv), then runs there
#   1. the unit tier, importing the clone's code (PYTHONPATH = the clone), and
#   2. the chart tier without the API server: helm lint, helm template + schema validation of every variant against
#      the vendored CRD schemas, hadolint, and pytest tests/chart minus the *apiserver.py files (KServe and KubeRay).
# Tools are not project files: helm/kubectl/linters come from this checkout's .venv-chart (installed if missing).
# Uncommitted changes are not in the clone, by design: this checks what a `git clone` gets.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
start=$SECONDS

if ! head="$(git -C "$ROOT" rev-parse --verify HEAD 2>/dev/null)"; then
  echo "clone-test: $ROOT is not a git checkout with a commit; this test clones HEAD" >&2
  exit 2
fi
"$ROOT/scripts/install-k8s-tools.sh"
venv="$(cd "$ROOT/.venv-chart" && pwd)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/clone-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
git clone -q --no-checkout "$ROOT" "$tmp/repo"
# HEAD may be detached (CI) and on no branch the clone fetched: fetch it by name.
git -C "$tmp/repo" fetch -q "$ROOT" HEAD
git -C "$tmp/repo" checkout -q --detach FETCH_HEAD
[[ "$(git -C "$tmp/repo" rev-parse HEAD)" == "$head" ]] || { echo "clone-test: clone is not at $head" >&2; exit 1; }
[[ "$(ls -A "$tmp")" == repo ]] || { echo "clone-test: $tmp is not empty beside the clone" >&2; exit 1; }
echo "clone-test: $head in $tmp/repo (git clone, nothing beside it)"

cd "$tmp/repo"
# A test that reached outside the clone would find nothing there; HOME moves too, so no user cache helps.
export HOME="$tmp/home" XDG_CACHE_HOME="$tmp/home/.cache" PYTHONPATH="$tmp/repo" HF_HUB_OFFLINE=1
mkdir -p "$HOME"

printf '\n==> unit tier in the clone\n'
"$PYTHON" -m pytest -q -p no:cacheprovider tests/unit

printf '\n==> chart render/schema tier in the clone\n'
CHART_VENV="$venv" CHART_TEST_SKIP_APISERVER=1 PREDICTOR_PYTHON="$(command -v "$PYTHON")" \
  PYTEST_ARGS="--ignore-glob=*apiserver.py" bash scripts/chart-test.sh

echo "clone-test: passed in $((SECONDS - start)) s"
