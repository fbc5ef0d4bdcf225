"""charts/deepseek-ocr-ray: every variant renders objects valid against KubeRay v1.7.0's RayService schema (strict),
the cluster layout follows the values, bad values are refused by name, and the helpers are the KServe chart's."""

from __future__ import annotations

import chart_manifests as manifests
import pytest
import yaml

CHART = manifests.RAY_CHART
VARIANTS = [None, *sorted(p.name for p in (CHART / "ci").glob("*.yaml"))]


def _render(variant: str | None = None, **kw) -> list[dict]:
    files = [CHART / "ci" / variant] if variant else []
    return manifests.render(*files, chart=CHART, **kw)


def _rayservice(docs: list[dict]) -> dict:
    (svc,) = [d for d in docs if d["kind"] == "RayService"]
    return svc


def _serve_config(svc: dict) -> dict:
    text = svc["spec"]["serveConfigV2"]
    assert isinstance(text, str), "serveConfigV2 must be a YAML string"
    return yaml.safe_load(text)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_is_valid(variant):
    docs = _render(variant)
    assert manifests.validate_all(docs) == []
    assert _rayservice(docs)["apiVersion"] == "ray.io/v1"


def test_defaults_cpu_head_gpu_workers_autoscaled_one_to_two():
    docs = _render()
    spec = _rayservice(docs)["spec"]
    cluster = spec["rayClusterConfig"]
    assert cluster["rayVersion"] == "2.60.0" and cluster["enableInTreeAutoscaling"] is True
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0" and head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    head_c = head["template"]["spec"]["containers"][0]
    assert {p["containerPort"] for p in head_c["ports"]} >= {6379, 8265, 8000, 8080}
    assert "nvidia.com/gpu" not in head_c["resources"].get("limits", {})
    (group,) = cluster["workerGroupSpecs"]
    assert (group["minReplicas"], group["maxReplicas"], group["replicas"]) == (1, 2, 1)
    worker = group["template"]["spec"]
    c = worker["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1" == c["resources"]["requests"]["nvidia.com/gpu"]
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/dev/shm", "/cache/huggingface", "/tmp"}
    env = {e["name"]: e for e in c["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf-secret"
    assert env["HF_HUB_OFFLINE"]["value"] == "0"
    assert worker["securityContext"]["runAsNonRoot"] is True and worker["securityContext"]["runAsUser"] == 1000
    (pvc,) = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert {v.get("persistentVolumeClaim", {}).get("claimName") for v in worker["volumes"]} >= {pvc["metadata"]["name"]}
    config = _serve_config(_rayservice(docs))
    (app,) = config["applications"]
    assert app["import_path"] == "predictor.ray_serve:build" and app["route_prefix"] == "/"
    assert app["args"]["model_id"] == "deepseek-ai/DeepSeek-OCR" and app["args"]["num_gpus"] == 1
    (deployment,) = app["deployments"]
    assert deployment["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 6.4,
                                                "upscale_delay_s": 30, "downscale_delay_s": 600}
    assert deployment["max_ongoing_requests"] == 8 + 64 + 8  # above the engine's capacity: its 429 is what clients see
    assert deployment["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 1}
    # KServe v2 gRPC: Serve's gRPC proxy with kserve's servicer, on every pod, and a Service in front
    servicer = "predictor.ray_serve.grpc.add_servicer"
    assert config["grpc_options"] == {"port": 9000, "grpc_servicer_functions": [servicer]}
    for pod in (head["template"]["spec"], worker):
        assert {"name": "grpc", "containerPort": 9000, "protocol": "TCP"} in pod["containers"][0]["ports"]
    (grpc_svc,) = [d for d in docs if d["kind"] == "Service"]
    assert grpc_svc["spec"]["ports"] == [{"name": "grpc", "port": 9000, "targetPort": "grpc", "protocol": "TCP",
                                         "appProtocol": "grpc"}]
    assert grpc_svc["spec"]["selector"]["ray.io/serve"] == "true"
    assert grpc_svc["spec"]["selector"]["app.kubernetes.io/instance"] == "r"


def test_names_labels_and_image_come_from_the_shared_helpers():
    link = CHART / "templates" / "_shared_helpers.tpl"
    assert link.is_symlink() and link.resolve() == (manifests.CHART / "templates" / "_helpers.tpl").resolve()
    kserve = {d["kind"]: d for d in manifests.render(release="ocr")}["InferenceService"]
    ray = _rayservice(_render(release="ocr", set_values={"nameOverride": "deepseek-ocr"}))
    assert ray["metadata"]["name"] == kserve["metadata"]["name"]
    assert ray["metadata"]["labels"] == kserve["metadata"]["labels"] | {"helm.sh/chart": "deepseek-ocr-ray-0.1.0"}
    digest = "sha256:" + "a" * 64
    ray = _rayservice(_render(set_values={"image.digest": digest}))
    head = ray["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"].endswith("@" + digest)


def test_arm64_gb10_variant_schedules_workers_on_arm64_only():
    cluster = _rayservice(_render("arm64-gb10-values.yaml"))["spec"]["rayClusterConfig"]
    worker = cluster["workerGroupSpecs"][0]["template"]["spec"]
    assert worker["nodeSelector"]["kubernetes.io/arch"] == "arm64" and worker["runtimeClassName"] == "nvidia"
    assert worker["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "nodeSelector" not in cluster["headGroupSpec"]["template"]["spec"]  # the CPU head runs anywhere


def test_offline_model_dir_variant():
    docs = _render("offline-model-dir-values.yaml")
    svc = _rayservice(docs)
    args = _serve_config(svc)["applications"][0]["args"]
    assert args["model_dir"] == "/models/DeepSeek-OCR-2" and "model_id" not in args
    assert args["served_model_names"] == ["ocr", "deepseek-ocr-2"]
    c = svc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["HF_HUB_OFFLINE"]["value"] == "1"
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]


def test_fixed_size_variant_passes_every_option_through():
    svc = _rayservice(_render("fixed-size-values.yaml"))
    spec = svc["spec"]
    assert spec["upgradeStrategy"]["type"] == "None"
    assert spec["rayClusterConfig"]["enableInTreeAutoscaling"] is False
    assert "autoscalerOptions" not in spec["rayClusterConfig"]
    assert spec["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["include-dashboard"] == "false"
    app = _serve_config(svc)["applications"][0]
    for key, value in {"max_pdf_pages": 16, "ngram_size": 20, "max_new_tokens": 2048, "default_max_tokens": 1024,
                       "request_timeout": 300, "max_batch_tokens": 65536, "allow_remote_images": True,
                       "remote_image_hosts": ["images.example.com"]}.items():
        assert app["args"][key] == value, key
    assert "grpc_options" not in _serve_config(svc)
    assert not [d for d in _render("fixed-size-values.yaml") if d["kind"] == "Service"]
    c = spec["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "grpc" not in {p["name"] for p in c["ports"]}
    dep = app["deployments"][0]
    assert dep["autoscaling_config"]["target_ongoing_requests"] == 3 and dep["graceful_shutdown_timeout_s"] == 120
    assert dep["max_ongoing_requests"] == 4 + 16 + 8


@pytest.mark.parametrize("values, message", [
    ({"worker.maxReplica": "3"}, "additional properties 'maxReplica'"),
    ({"serve.autoscaling.maxReplicas": "3"}, "exceeds worker.maxReplicas x worker.gpu.count"),
    ({"serve.autoscaling.minReplicas": "3", "serve.autoscaling.maxReplicas": "2"}, "must be >= serve.autoscaling"),
    ({"worker.replicas": "5"}, "worker.replicas"),
    ({"upgradeStrategy": "NewClusters"}, "upgradeStrategy"),
    ({"model.device": "cuda", "worker.gpu.count": "0", "serve.gpusPerReplica": "0"}, "model.device=cuda"),
    ({"huggingface.token.value": "x"}, "not both"),
    ({"fullnameOverride": "x" * 46}, "fullnameOverride"),
    ({"serve.grpc.port": "8000"}, "serve/grpc/port"),
])
def test_bad_values_are_refused_by_name(values, message):
    with pytest.raises(manifests.RenderError) as exc:
        _render(set_values=values)
    assert message in str(exc.value)


def test_helm_test_pod_calls_the_serve_service():
    docs = _render(release="ocr")
    (pod,) = [d for d in docs if d["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["BASE_URL"] == "http://ocr-deepseek-ocr-ray-serve-svc.ml.svc.cluster.local:8000"
    assert "/v1/chat/completions" in pod["spec"]["containers"][0]["command"][-1]
