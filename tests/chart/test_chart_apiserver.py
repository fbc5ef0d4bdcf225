"""The chart against a real kube-apiserver (v1.20.2 built from Debian's source) + etcd, with KServe's CRD loaded.

`scripts/install-k8s-tools.sh --apiserver` provides the binaries (cached in ~/.cache/deepseek-ocr-k8s-tools);
scripts/chart-test.sh runs it before pytest. There are no controllers: this proves the API server accepts (or
rejects) what the chart renders, not that KServe reconciles it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import chart_manifests as manifests
import pytest
import yaml

CACHE = Path(
    os.environ.get(
        "K8S_TOOLS_CACHE", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "deepseek-ocr-k8s-tools"
    )
)
NAMESPACE = "ml"
TOKEN = "chart-test-token"
# Variants whose objects all have their API on this server (PodMonitor needs the Prometheus Operator CRD).
SERVER_VARIANTS = [
    None,
    "keda-values.yaml",
    "hpa-memory-values.yaml",
    "storageuri-hf-values.yaml",
    "storageuri-pvc-offline-values.yaml",
    "existing-pvc-secret-values.yaml",
    "created-secret-values.yaml",
    "arm64-gb10-values.yaml",
    "standard-none-values.yaml",
]


def _apiserver_binary() -> str | None:
    for cand in (
        os.environ.get("KUBE_APISERVER"),
        str(CACHE / "kube-apiserver-v1.20.2"),
        shutil.which("kube-apiserver"),
    ):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def _kubectl() -> str:
    venv = manifests.ROOT / ".venv-chart" / "bin" / "kubectl"
    return str(venv) if venv.exists() else (shutil.which("kubectl") or "kubectl")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _strip_empty_defaults(node):
    """apiextensions v1 on 1.20 rejects `default: ""` in CRD schemas (340 of them in KServe's CRD)."""
    if isinstance(node, dict):
        if node.get("default", None) == "":
            node.pop("default")
        for v in node.values():
            _strip_empty_defaults(v)
    elif isinstance(node, list):
        for v in node:
            _strip_empty_defaults(v)


class Cluster:
    def __init__(self, workdir: Path, kubeconfig: Path):
        self.workdir = workdir
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    def run(self, *cmd: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(cmd), input=input, capture_output=True, text=True, env=self.env, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kubectl(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run(_kubectl(), *args, **kw)

    def helm(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run(manifests.helm_binary() or "helm", *args, **kw)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    apiserver, etcd = _apiserver_binary(), shutil.which("etcd")
    if not apiserver or not etcd or not shutil.which("openssl"):
        msg = "kube-apiserver/etcd/openssl missing: run scripts/install-k8s-tools.sh --apiserver"
        if os.environ.get("CHART_TEST_REQUIRED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("apiserver")
    subprocess.run(["openssl", "genrsa", "-out", d / "sa.key", "2048"], check=True, capture_output=True)
    subprocess.run(
        ["openssl", "rsa", "-in", d / "sa.key", "-pubout", "-out", d / "sa.pub"], check=True, capture_output=True
    )
    (d / "tokens.csv").write_text(f"{TOKEN},chart-admin,chart-admin,system:masters\n")
    client, peer, secure = _free_port(), _free_port(), _free_port()
    etcd_cmd = [
        etcd, "--data-dir", str(d / "etcd"), "--name", "chart-test",
        "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"chart-test=http://127.0.0.1:{peer}",
    ]  # fmt: skip
    apiserver_cmd = [
        apiserver, f"--etcd-servers=http://127.0.0.1:{client}", "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1", f"--secure-port={secure}", f"--cert-dir={d / 'certs'}",
        f"--token-auth-file={d / 'tokens.csv'}", "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc", f"--service-account-key-file={d / 'sa.pub'}",
        f"--service-account-signing-key-file={d / 'sa.key'}", "--service-cluster-ip-range=10.0.0.0/24",
        "--disable-admission-plugins=ServiceAccount",
    ]  # fmt: skip
    procs = []
    # the children keep their own copies of the log file descriptors
    with open(d / "etcd.log", "w") as etcd_log, open(d / "apiserver.log", "w") as api_log:
        procs.append(subprocess.Popen(etcd_cmd, stdout=etcd_log, stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(apiserver_cmd, stdout=api_log, stderr=subprocess.STDOUT))
    kubeconfig = d / "kubeconfig"
    kubeconfig.write_text(
        textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        clusters: [{{name: local, cluster: {{server: "https://127.0.0.1:{secure}", insecure-skip-tls-verify: true}}}}]
        users: [{{name: ci, user: {{token: {TOKEN}}}}}]
        contexts: [{{name: local, context: {{cluster: local, user: ci, namespace: {NAMESPACE}}}}}]
        current-context: local
        """)
    )
    kubeconfig.chmod(0o600)
    try:
        import ssl

        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        deadline = time.monotonic() + 120
        while True:
            for p in procs:
                if p.poll() is not None:
                    raise AssertionError(f"{p.args[0]} exited:\n" + (d / "apiserver.log").read_text()[-3000:])
            try:
                req = urllib.request.Request(
                    f"https://127.0.0.1:{secure}/readyz", headers={"Authorization": f"Bearer {TOKEN}"}
                )
                with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("apiserver not ready in 120 s:\n" + (d / "apiserver.log").read_text()[-3000:])
            time.sleep(1)
        c = Cluster(d, kubeconfig)
        crds = list(yaml.safe_load_all(manifests.CRD_YAML.read_text()))
        _strip_empty_defaults(crds)
        c.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(crds))
        deadline = time.monotonic() + 60
        jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
        while (
            c.kubectl(
                "get", "crd", "inferenceservices.serving.kserve.io", "-o", f"jsonpath={jsonpath}", check=False
            ).stdout
            != "True"
        ):
            assert time.monotonic() < deadline, "CRD not Established"
            time.sleep(1)
        c.kubectl("create", "namespace", NAMESPACE)
        # discovery of the new API group can lag behind Established
        deadline = time.monotonic() + 60
        while (
            "inferenceservices" not in c.kubectl("api-resources", "--api-group=serving.kserve.io", check=False).stdout
        ):
            assert time.monotonic() < deadline, "serving.kserve.io not in discovery"
            time.sleep(1)
        yield c
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _values_args(variant: str | None) -> list[str]:
    return ["-f", str(manifests.CHART / "ci" / variant)] if variant else []


@pytest.mark.parametrize("variant", SERVER_VARIANTS, ids=lambda v: v or "defaults")
def test_helm_install_dry_run_server(cluster, variant):
    out = cluster.helm(
        "install", "ocr", str(manifests.CHART), "--namespace", NAMESPACE, "--dry-run=server", *_values_args(variant)
    ).stdout
    assert "STATUS: pending-install" in out
    assert "kind: InferenceService" in out
    assert "HF token" in out or variant in {"storageuri-pvc-offline-values.yaml"}


@pytest.mark.parametrize("variant", SERVER_VARIANTS, ids=lambda v: v or "defaults")
def test_server_side_dry_run_apply(cluster, variant):
    docs = manifests.render(
        *([manifests.CHART / "ci" / variant] if variant else []), release="ocr", namespace=NAMESPACE
    )
    docs = [d for d in docs if "helm.sh/hook" not in (d["metadata"].get("annotations") or {})]
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs)).stdout
    assert "inferenceservice.serving.kserve.io/ocr-deepseek-ocr created (server dry run)" in out
    assert out.count("(server dry run)") == len(docs)


def test_tailscale_refused_on_old_server_with_readable_message(cluster):
    """loadBalancerClass is GA in Kubernetes 1.24; on this 1.20 server the chart says so instead of a schema error."""
    proc = cluster.helm(
        "install", "ts", str(manifests.CHART), "--namespace", NAMESPACE, "--dry-run=server",
        "-f", str(manifests.CHART / "ci" / "tailscale-values.yaml"), check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "tailscale.enabled needs Kubernetes >= 1.24" in proc.stderr, proc.stderr


def test_real_install_and_uninstall(cluster):
    cluster.helm(
        "install",
        "real",
        str(manifests.CHART),
        "--namespace",
        NAMESPACE,
        "-f",
        str(manifests.CHART / "ci" / "keda-values.yaml"),
    )
    isvc = yaml.safe_load(cluster.kubectl("get", "inferenceservice", "real-deepseek-ocr", "-o", "yaml").stdout)
    metric = isvc["spec"]["predictor"]["autoScaling"]["metrics"][0]["external"]
    assert metric["target"]["value"] == "6.4"
    limits = isvc["spec"]["predictor"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1" and limits["memory"] == "24Gi"
    assert cluster.helm("list", "--namespace", NAMESPACE, "-q").stdout.split() == ["real"]
    cluster.helm("uninstall", "real", "--namespace", NAMESPACE)
    gone = cluster.kubectl("get", "inferenceservice", "real-deepseek-ocr", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    # the HF cache claim is kept on purpose (helm.sh/resource-policy: keep)
    assert cluster.kubectl("get", "pvc", "real-deepseek-ocr-hf-cache", "-o", "name").stdout.strip()


POSTRENDER = """#!{python}
import sys
text = sys.stdin.read()
for old, new in {pairs!r}:
    assert old in text, old
    text = text.replace(old, new)
sys.stdout.write(text)
"""


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ('nvidia.com/gpu: "1"', "nvidia.com/gpu: 1.5", "nvidia.com/gpu"),
        ("minReplicas: 1", 'minReplicas: "one"', "minReplicas"),
        ("backend: prometheus", "backend: influxdb", "backend"),
        ('storage: "20Gi"', 'storage: "twenty"', "storage"),
    ],
    ids=["gpu-1.5", "minReplicas-string", "keda-backend", "pvc-size"],
)
def test_server_rejects_bad_manifest_that_bypasses_the_values_schema(cluster, tmp_path, request, old, new, words):
    """A post-renderer corrupts one field after the values schema passed: the API server must refuse it.

    (`helm install --dry-run=server` only checks the server's OpenAPI types client-side and lets e.g. a GPU count
    of 1.5 through, so the rejection is shown with a real `helm install` and with `kubectl apply --dry-run=server`.)
    """
    script = tmp_path / "postrender.py"
    script.write_text(POSTRENDER.format(python=sys.executable, pairs=[(old, new)]))
    script.chmod(0o755)
    release = "bad-" + request.node.callspec.id.lower().replace(".", "")
    chart_args = ("--namespace", NAMESPACE, "-f", str(manifests.CHART / "ci" / "keda-values.yaml"))
    rendered = cluster.helm(
        "template", release, str(manifests.CHART), *chart_args, "--post-renderer", str(script)
    ).stdout
    assert new in rendered
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
    assert proc.returncode != 0 and words in proc.stderr, proc.stdout + proc.stderr
    proc = cluster.helm(
        "install", release, str(manifests.CHART), *chart_args, "--post-renderer", str(script), check=False
    )
    try:
        assert proc.returncode != 0, proc.stdout
        assert words in proc.stderr, proc.stderr
    finally:
        cluster.helm("uninstall", release, "--namespace", NAMESPACE, check=False)


def test_server_rejects_unknown_field(cluster):
    docs = manifests.render(release="typo", namespace=NAMESPACE)
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    isvc["spec"]["predictor"]["replicas"] = 2  # not a field: minReplicas/maxReplicas are
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(isvc), check=False)
    assert proc.returncode != 0 and "replicas" in proc.stderr, proc.stdout + proc.stderr


def _notes(cluster, *args: str) -> str:
    out = cluster.helm("install", "notes", str(manifests.CHART), "--namespace", NAMESPACE, "--dry-run=server", *args)
    return out.stdout.split("\nNOTES:\n", 1)[1]


def test_notes_explain_how_to_reach_the_service(cluster):
    notes = _notes(cluster)
    assert "kubectl -n ml port-forward svc/notes-deepseek-ocr-predictor 8080:80" in notes
    assert "curl -s http://127.0.0.1:8080/health" in notes
    assert "http://127.0.0.1:8080/v1/models/deepseek-ocr:predict" in notes and "instances" in notes
    assert "http://127.0.0.1:8080/openai/v1" in notes
    assert "helm test -n ml notes" in notes
    assert "HF token: read from Secret hf-secret key HF_TOKEN (optional)" in notes
    assert "WARNING: image.repository is the placeholder" in notes
    assert "ReadWriteOnce but up to 2 replicas" in notes
    assert "WARNING: remoteImages" not in notes and "token.value" not in notes


def test_notes_warn_about_risky_settings_and_never_print_the_token(cluster):
    notes = _notes(
        cluster,
        "--set", "huggingface.token.existingSecret=",
        "--set", "huggingface.token.value=hf_TopSecretValue123",
        "--set", "remoteImages.enabled=true",
        "--set", "remoteImages.allowedHosts={images.example.com}",
        "--set", "autoscaling.mode=keda",
        "--set", "resources.gpu.count=0",
        "--set", "securityContext.readOnlyRootFilesystem=false",
        "--set", "image.repository=registry.internal/ocr",
        "--set", "auth.existingSecret=ocr-key",
        "--set", "auth.metrics=true",
    )  # fmt: skip
    assert "hf_TopSecretValue123" not in notes
    assert "HF token: stored in Secret notes-deepseek-ocr-hf-token" in notes
    assert "WARNING: huggingface.token.value puts the token in the Helm release record" in notes
    assert "WARNING: remoteImages.enabled lets clients make the server fetch URLs from images.example.com" in notes
    assert "WARNING: resources.gpu.count=0" in notes
    assert "WARNING: the hardened security context was relaxed" in notes
    assert "WARNING: auth.metrics=true: /metrics needs the API key" in notes
    assert "KEDA scales on: sum(deepseek_ocr_requests_in_flight{" in notes and "target 6.4 in-flight" in notes
    assert "placeholder" not in notes


def test_notes_say_cpu_is_a_proxy_when_the_cluster_has_no_keda(cluster):
    out = cluster.helm("install", "auto", str(manifests.CHART), "--namespace", NAMESPACE, "--dry-run=server").stdout
    assert 'serving.kserve.io/autoscalerClass: "hpa"' in out and "scaleTarget: 9" in out
    notes = out.split("\nNOTES:\n", 1)[1]
    assert "autoscaler hpa (auto)" in notes
    assert "HPA scales on CPU: target 9 % of the 8-core request" in notes
    assert "CPU is a proxy for load" in notes and "KEDA scales on" not in notes


# Our own stand-in for KEDA's CRD: only its group/version matter, so helm's .Capabilities sees keda.sh/v1alpha1.
KEDA_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {
        "group": "keda.sh",
        "scope": "Namespaced",
        "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
        "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}


def test_auto_mode_picks_keda_once_the_cluster_serves_it(cluster):
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(KEDA_CRD))
    try:
        deadline = time.monotonic() + 60
        while "scaledobjects" not in cluster.kubectl("api-resources", "--api-group=keda.sh", check=False).stdout:
            assert time.monotonic() < deadline, "keda.sh not in discovery"
            time.sleep(1)
        out = cluster.helm("install", "auto", str(manifests.CHART), "--namespace", NAMESPACE, "--dry-run=server").stdout
        assert 'serving.kserve.io/autoscalerClass: "keda"' in out and "scaleTarget" not in out
        notes = out.split("\nNOTES:\n", 1)[1]
        assert "autoscaler keda (auto)" in notes and "KEDA scales on: sum(deepseek_ocr_requests_in_flight{" in notes
        assert "Chosen because the cluster serves keda.sh/v1alpha1" in notes and "CPU is a proxy" not in notes
    finally:
        cluster.kubectl("delete", "crd", "scaledobjects.keda.sh", "--wait=true", check=False)
