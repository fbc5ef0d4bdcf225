"""charts/deepseek-ocr-ray against a real kube-apiserver with KubeRay v1.7.0's RayService CRD loaded.

Same server as test_chart_apiserver.py (its `cluster` fixture, one per module). No operator runs: this proves the
API server accepts (or rejects) what the chart renders, not that KubeRay reconciles it.
"""

from __future__ import annotations

import time

import chart_manifests as manifests
import pytest
import yaml
from test_chart_apiserver import NAMESPACE, _strip_empty_defaults, cluster  # noqa: F401 - the fixture

CHART = manifests.RAY_CHART
VARIANTS = [None, *sorted(p.name for p in (CHART / "ci").glob("*.yaml"))]


def _for_old_server(node):
    """Make KubeRay's CRD loadable by this 1.20 server: drop x-kubernetes-validations (CEL rules, Kubernetes >= 1.23,
    not a schema field here), and since the empty defaults go too (see _strip_empty_defaults), make list-map keys
    that only had `default: ""` required instead (1.20 wants one or the other)."""
    if isinstance(node, dict):
        node.pop("x-kubernetes-validations", None)
        items = node.get("items")
        for key in node.get("x-kubernetes-list-map-keys", []):
            if isinstance(items, dict) and items.get("properties", {}).get(key, {}).get("default", None) == "":
                items.setdefault("required", [])
                if key not in items["required"]:
                    items["required"].append(key)
        for v in node.values():
            _for_old_server(v)
    elif isinstance(node, list):
        for v in node:
            _for_old_server(v)


@pytest.fixture(scope="module")
def ray_cluster_api(cluster):  # noqa: F811 - the imported fixture
    (crd,) = [d for d in yaml.safe_load_all(manifests.RAYSERVICE_CRD.read_text()) if d]
    _for_old_server(crd)
    _strip_empty_defaults(crd)
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(crd))
    deadline = time.monotonic() + 60
    while "rayservices" not in cluster.kubectl("api-resources", "--api-group=ray.io", check=False).stdout:
        assert time.monotonic() < deadline, "ray.io not in discovery"
        time.sleep(1)
    # kubectl validates against the server's published OpenAPI, which lags behind discovery: wait for the schema
    explain = ("explain", "rayservices.spec.rayClusterConfig.workerGroupSpecs.maxReplicas", "--api-version=ray.io/v1")
    while cluster.kubectl(*explain, check=False).returncode != 0:
        assert time.monotonic() < deadline + 60, "RayService schema not in the server's OpenAPI"
        time.sleep(1)
    return cluster


def _values(variant: str | None) -> list[str]:
    return ["-f", str(CHART / "ci" / variant)] if variant else []


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v or "defaults")
def test_server_side_dry_run_apply(ray_cluster_api, variant):
    docs = manifests.render(*([CHART / "ci" / variant] if variant else []), chart=CHART, release="ocr",
                            namespace=NAMESPACE)
    docs = [d for d in docs if "helm.sh/hook" not in (d["metadata"].get("annotations") or {})]
    out = ray_cluster_api.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs)).stdout
    assert "rayservice.ray.io/ocr-deepseek-ocr-ray created (server dry run)" in out
    assert out.count("(server dry run)") == len(docs)


def test_real_install_notes_and_uninstall(ray_cluster_api):
    out = ray_cluster_api.helm("install", "rs", str(CHART), "--namespace", NAMESPACE).stdout
    notes = out.split("\nNOTES:\n", 1)[1]
    assert "port-forward svc/rs-deepseek-ocr-ray-serve-svc 8000:8000" in notes
    assert "svc/rs-deepseek-ocr-ray-head-svc 8265:8265" in notes
    assert "KServe v2 gRPC on svc/rs-deepseek-ocr-ray-grpc:9000" in notes
    svc = yaml.safe_load(ray_cluster_api.kubectl("get", "rayservice", "rs-deepseek-ocr-ray", "-o", "yaml").stdout)
    group = svc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert (group["minReplicas"], group["maxReplicas"]) == (1, 2)
    assert "predictor.ray_serve:build" in svc["spec"]["serveConfigV2"]
    ray_cluster_api.helm("uninstall", "rs", "--namespace", NAMESPACE)
    gone = ray_cluster_api.kubectl("get", "rayservice", "rs-deepseek-ocr-ray", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


@pytest.mark.parametrize(("path", "value", "words"), [
    (("spec", "rayClusterConfig", "workerGroupSpecs", 0, "maxReplica"), 3, "maxReplica"),
    (("spec", "rayClusterConfig", "workerGroupSpecs", 0, "replicas"), "one", "replicas"),
    (("spec", "serveConfigV2"), {"applications": []}, "serveConfigV2"),
])
def test_server_rejects_what_the_crd_refuses(ray_cluster_api, path, value, words):
    docs = manifests.render(chart=CHART, release="bad", namespace=NAMESPACE)
    svc = next(d for d in docs if d["kind"] == "RayService")
    node = svc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    proc = ray_cluster_api.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(svc), check=False)
    assert proc.returncode != 0 and words in proc.stderr, proc.stdout + proc.stderr
