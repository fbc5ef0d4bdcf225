#!/usr/bin/env bash
# make chart-test: everything that proves the Helm chart and the Containerfile, offline except for the registries
# the tools come from. Installs what is missing (scripts/install-k8s-tools.sh --apiserver), then:
#   1. helm lint --strict, for the defaults and every ci/*.yaml variant of charts/deepseek-ocr and charts/deepseek-ocr-ray
#   2. helm template + validation of every rendered object (kubernetes-validate, KServe/KubeRay CRD schemas, metadata)
#   3. hadolint Containerfile
#   4. pytest tests/chart: rendered-object assertions, bad values refused, real kube-apiserver + etcd dry runs
# Env: CHART_TEST_SKIP_APISERVER=1 skips building/starting the API server (its tests then fail, by design, unless
# run outside this script or ignored through PYTEST_ARGS); PYTEST_ARGS adds pytest options; CHART_VENV moves the
# tools venv (default .venv-chart).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
start=$SECONDS

step() { printf '\n==> %s\n' "$*"; }

if [[ ! -f tests/chart/crds/inferenceservice_v1beta1.json ]]; then
  echo "chart-test: tests/chart/crds/inferenceservice_v1beta1.json missing (vendored CRD schemas)" >&2
  exit 2
fi

step "tools"
if [[ "${CHART_TEST_SKIP_APISERVER:-0}" == 1 ]]; then
  scripts/install-k8s-tools.sh
else
  scripts/install-k8s-tools.sh --apiserver
fi
# the python with the predictor's dependencies (for the CLI-flag cross-check), found before the venv shadows it
PREDICTOR_PYTHON="${PREDICTOR_PYTHON:-$(command -v python3)}"
export PREDICTOR_PYTHON
VENV="${CHART_VENV:-$ROOT/.venv-chart}"
export PATH="$VENV/bin:$PATH"
PY="$VENV/bin/python"
helm version --short

# both charts: the KServe InferenceService and the KubeRay RayService (charts/deepseek-ocr-ray shares the helpers)
for CHART in charts/deepseek-ocr charts/deepseek-ocr-ray; do
step "helm lint --strict $CHART"
helm lint --strict "$CHART"
for f in "$CHART"/ci/*.yaml; do
  helm lint --strict --quiet "$CHART" -f "$f" >/dev/null || { helm lint --strict "$CHART" -f "$f"; exit 1; }
  echo "lint ok: $f"
done

step "helm template + manifest validation: $CHART"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
helm template ocr "$CHART" --namespace ml > "$tmp/default.yaml"
printf '%-45s ' "defaults:"; "$PY" tests/chart/chart_manifests.py < "$tmp/default.yaml"
for f in "$CHART"/ci/*.yaml; do
  helm template ocr "$CHART" --namespace ml -f "$f" > "$tmp/variant.yaml"
  printf '%-45s ' "$(basename "$f"):"; "$PY" tests/chart/chart_manifests.py < "$tmp/variant.yaml"
done
rm -rf "$tmp"
done

step "hadolint Containerfile"
hadolint --failure-threshold style Containerfile && echo "hadolint: clean"

step "pytest tests/chart"
CHART_TEST_REQUIRED=1 "$PY" -m pytest -q -p no:cacheprovider -W ignore::pytest.PytestConfigWarning \
  tests/chart ${PYTEST_ARGS:-}

echo
echo "chart-test: passed in $((SECONDS - start)) s"
