"""Assertions on the objects `helm template` renders, one test per setting of the chart."""

from __future__ import annotations

import base64

import chart_manifests as manifests
import pytest
from chart_helpers import args, by_kind, container, env, isvc, mounts, one, predictor, render, volumes

CI = manifests.CHART / "ci"


@pytest.fixture(scope="module")
def default() -> list[dict]:
    return render()


# ---------------------------------------------------------------- defaults = the original deployment


def test_default_objects(default):
    kinds = sorted(d["kind"] for d in default)
    assert kinds == ["InferenceService", "PersistentVolumeClaim", "Pod"], kinds


def test_default_is_raw_deployment_with_calibrated_cpu_hpa_without_keda(default):
    meta = isvc(default)["metadata"]
    assert isvc(default)["apiVersion"] == "serving.kserve.io/v1beta1"
    assert meta["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    # autoscaling.mode=auto and `helm template` without --api-versions: no KEDA, so KServe's HPA on CPU
    assert meta["annotations"]["serving.kserve.io/autoscalerClass"] == "hpa"
    assert meta["namespace"] == "ml"
    p = predictor(default)
    assert (p["minReplicas"], p["maxReplicas"]) == (1, 2)
    # 70 % of a saturated replica's 1000m is 700m: 8.75 % of the 8-core request, rounded to 9
    assert (p["scaleMetric"], p["scaleMetricType"], p["scaleTarget"]) == ("cpu", "Utilization", 9)
    assert "autoScaling" not in p


def test_default_container_runs_predictor(default):
    c = container(default)
    assert c["name"] == "kserve-container"
    assert c["command"] == ["python", "-m", "predictor"]
    assert c["image"] == "registry.example.com/deepseek-ocr/predictor:0.1.0"
    a = args(default)
    assert a["model_name"] == "deepseek-ocr"
    assert a["model_id"] == "deepseek-ai/DeepSeek-OCR"
    assert "model_dir" not in a
    assert (a["http_port"], a["grpc_port"]) == ("8080", "8081")
    assert (a["max_batch_size"], a["max_queue"]) == ("8", "64")
    assert a["allow_remote_images"] == "false"
    assert {"max_new_tokens", "max_batch_tokens", "request_timeout", "remote_image_hosts"}.isdisjoint(a)
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080, "grpc": 8081}


def test_default_resources_gpu_and_both_requests_and_limits(default):
    r = container(default)["resources"]
    assert r["requests"] == {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert r["limits"] == {"cpu": "16", "memory": "24Gi", "nvidia.com/gpu": "1"}


def test_default_volumes_shm_caches_tmp(default):
    v = volumes(default)
    assert v["devshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert v["hf-cache"]["persistentVolumeClaim"]["claimName"] == "r-deepseek-ocr-hf-cache"
    assert v["torch-cache"]["emptyDir"]["sizeLimit"] == "10Gi"
    assert "emptyDir" in v["tmp"]
    assert mounts(default) == {
        "tmp": "/tmp",
        "hf-cache": "/cache/huggingface",
        "torch-cache": "/cache/torch",
        "devshm": "/dev/shm",
    }
    pvc = one(default, "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "r-deepseek-ocr-hf-cache"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_default_env_token_from_hf_secret(default):
    e = env(default)
    assert e["HF_HOME"]["value"] == "/cache/huggingface"
    assert e["TORCH_HOME"]["value"] == "/cache/torch"
    assert e["HF_HUB_OFFLINE"]["value"] == "0"
    ref = e["HF_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "hf-secret", "key": "HF_TOKEN", "optional": True}
    assert "STORAGE_URI" not in e
    assert not by_kind(default, "Secret")


def test_default_probes(default):
    c = container(default)
    assert c["readinessProbe"]["httpGet"] == {"path": "/v1/models/deepseek-ocr", "port": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    s = c["startupProbe"]
    assert s["httpGet"]["path"] == "/v1/models/deepseek-ocr"
    # budget for a first download + load of 5-10 minutes, with margin
    assert s["periodSeconds"] * s["failureThreshold"] >= 600
    assert predictor(default)["terminationGracePeriodSeconds"] > 30


def test_default_security_context(default):
    pod = predictor(default)["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
    c = container(default)["securityContext"]
    assert c["allowPrivilegeEscalation"] is False
    assert c["readOnlyRootFilesystem"] is True
    assert c["capabilities"]["drop"] == ["ALL"]


def test_default_scheduling_not_arm64_only(default):
    p = predictor(default)
    assert "nodeSelector" not in p
    assert not {"tolerations", "affinity", "runtimeClassName", "priorityClassName"} & set(p)


def test_selector_labels_on_pods(default):
    labels = predictor(default)["labels"]
    assert labels["app.kubernetes.io/component"] == "predictor"
    assert labels["app.kubernetes.io/instance"] == "r"


def test_helm_test_pod_waits_and_sends_ocr_request(default):
    pod = one(default, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (c,) = pod["spec"]["containers"]
    e = {x["name"]: x["value"] for x in c["env"]}
    assert e["READY_URL"] == "http://r-deepseek-ocr-predictor.ml.svc.cluster.local/v1/models/deepseek-ocr"
    assert e["PREDICT_URL"].endswith("/v1/models/deepseek-ocr:predict")
    script = c["command"][2]
    compile(script, "helm-test", "exec")  # valid python
    assert "instances" in script and "READY_TIMEOUT" in script
    png = "".join(part.split('"')[1] for part in script.split("PNG = (")[1].split(")")[0].splitlines())
    assert base64.b64decode(png).startswith(b"\x89PNG\r\n\x1a\n")


# ---------------------------------------------------------------- model source and server flags


def test_storage_uri_hf_uses_model_dir():
    docs = render(CI / "storageuri-hf-values.yaml")
    a = args(docs)
    assert a["model_dir"] == "/mnt/models" and "model_id" not in a
    assert env(docs)["STORAGE_URI"]["value"] == "hf://deepseek-ai/DeepSeek-OCR"
    assert a["served_model_names"] == "deepseek-ocr-v1,ocr"
    assert (a["dtype"], a["attn_implementation"]) == ("bfloat16", "sdpa")
    assert (a["max_batch_size"], a["max_batch_tokens"], a["max_queue"]) == ("16", "65536", "128")
    assert (a["max_new_tokens"], a["request_timeout"]) == ("4096", "600")
    assert (a["max_body_bytes"], a["max_image_pixels"]) == ("33554432", "40000000")


@pytest.mark.parametrize(
    ("max_new", "default", "expected"),
    [(None, None, None), ("16", None, "16"), ("8192", None, None), ("100", "50", "50"), (None, "200", "200")],
)
def test_default_max_tokens_never_exceeds_the_cap(max_new, default, expected):
    values = {k: v for k, v in {"server.maxNewTokens": max_new, "server.defaultMaxTokens": default}.items() if v}
    a = args(render(set_values=values))
    assert a.get("max_new_tokens") == max_new
    assert a.get("default_max_tokens") == expected


def test_storage_uri_pvc_offline_and_persistent_torch_cache():
    docs = render(CI / "storageuri-pvc-offline-values.yaml")
    assert env(docs)["STORAGE_URI"]["value"] == "pvc://model-store/deepseek-ocr-2"
    assert env(docs)["HF_HUB_OFFLINE"]["value"] == "1"
    assert "HF_TOKEN" not in env(docs)
    assert args(docs)["model_name"] == "deepseek-ocr-2"
    c = container(docs)
    assert c["readinessProbe"]["httpGet"]["path"] == "/v1/models/deepseek-ocr-2"
    pvcs = {d["metadata"]["name"]: d for d in by_kind(docs, "PersistentVolumeClaim")}
    assert set(pvcs) == {"r-deepseek-ocr-hf-cache", "r-deepseek-ocr-torch-cache"}
    assert pvcs["r-deepseek-ocr-torch-cache"]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert pvcs["r-deepseek-ocr-torch-cache"]["spec"]["storageClassName"] == "fast-ssd"
    assert volumes(docs)["torch-cache"]["persistentVolumeClaim"]["claimName"] == "r-deepseek-ocr-torch-cache"


def test_existing_pvc_and_secret():
    docs = render(CI / "existing-pvc-secret-values.yaml")
    assert not by_kind(docs, "PersistentVolumeClaim") and not by_kind(docs, "Secret")
    v = volumes(docs)
    assert v["hf-cache"]["persistentVolumeClaim"]["claimName"] == "shared-hf-cache"
    assert v["torch-cache"]["persistentVolumeClaim"]["claimName"] == "shared-torch-cache"
    ref = env(docs)["HF_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "team-hf-token", "key": "token", "optional": False}


def test_created_secret_from_value():
    docs = render(CI / "created-secret-values.yaml")
    secret = one(docs, "Secret")
    assert secret["metadata"]["name"] == "r-deepseek-ocr-hf-token"
    assert base64.b64decode(secret["data"]["HF_TOKEN"]) == b"hf_dummyTokenForCiOnly"
    ref = env(docs)["HF_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "r-deepseek-ocr-hf-token"
    pvc = one(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["storageClassName"] == "nfs-client"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert "annotations" not in pvc["metadata"]


def test_no_token_source_at_all():
    docs = render(set_values={"huggingface.token.existingSecret": ""})
    assert "HF_TOKEN" not in env(docs) and not by_kind(docs, "Secret")


# ---------------------------------------------------------------- scheduling


def test_arm64_gb10_scheduling():
    p = predictor(render(CI / "arm64-gb10-values.yaml"))
    assert p["nodeSelector"] == {"kubernetes.io/arch": "arm64", "nvidia.com/gpu.product": "NVIDIA-GB10"}
    assert p["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    # NVML reports no GPU memory on GB10, so a node-affinity on nvidia.com/gpu.memory would never match
    assert "gpu.memory" not in str(p.get("affinity", {}))
    assert (p["runtimeClassName"], p["priorityClassName"]) == ("nvidia", "inference-high")


def _gib(q: str) -> float:
    assert q.endswith("Gi"), q
    return float(q[:-2])


def test_arm64_gb10_memory_fits_unified_memory():
    docs = render(CI / "arm64-gb10-values.yaml")
    r = container(docs)["resources"]
    # Guaranteed QoS: the GPU's memory is the node's RAM, the kubelet must never reclaim it from under the model
    assert r["requests"] == r["limits"]
    a = args(docs)
    weights = 6.67e9 / 2**30  # the v1 bfloat16 checkpoint
    kv = int(a["max_batch_tokens"]) * 2 * 12 * 1280 * 2 / 2**30  # K and V, 12 layers, 1280 wide, bf16
    shm = _gib(volumes(docs)["devshm"]["emptyDir"]["sizeLimit"])
    need = 2 * weights + kv + 4 + 2 + 2 + shm  # + CPU copy at load, activations, CUDA context, Python
    assert need <= _gib(r["limits"]["memory"]) <= 64, (need, r["limits"]["memory"])
    assert env(docs)["OMP_NUM_THREADS"]["value"] == "4"
    assert int(env(docs)["OMP_NUM_THREADS"]["value"]) <= int(r["limits"]["cpu"])


def test_gpu_count_and_resource_name():
    docs = render(set_values={"resources.gpu.count": "2", "resources.gpu.resourceName": "nvidia.com/mig-3g.40gb"})
    r = container(docs)["resources"]
    assert r["limits"]["nvidia.com/mig-3g.40gb"] == "2" and r["requests"]["nvidia.com/mig-3g.40gb"] == "2"
    assert "nvidia.com/gpu" not in r["limits"]
