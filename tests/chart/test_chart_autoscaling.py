"""Autoscaling: `auto` follows the cluster's APIs (KEDA or the calibrated CPU HPA), and each explicit mode."""

from __future__ import annotations

import chart_manifests as manifests
import pytest
from chart_helpers import args, by_kind, container, env, isvc, predictor, render, volumes

CI = manifests.CHART / "ci"

KEDA_API = ("--api-versions", "keda.sh/v1alpha1")


def test_auto_mode_picks_keda_when_the_cluster_serves_it():
    docs = render(extra_args=KEDA_API)
    meta, p = isvc(docs)["metadata"], predictor(docs)
    assert meta["annotations"]["serving.kserve.io/autoscalerClass"] == "keda"
    assert not {"scaleMetric", "scaleTarget", "scaleMetricType"} & set(p)
    (m,) = p["autoScaling"]["metrics"]
    assert m["type"] == "External"
    assert m["external"]["metric"]["query"].startswith("sum(deepseek_ocr_requests_in_flight{")
    assert m["external"]["target"] == {"type": "Value", "value": "6.4"}


@pytest.mark.parametrize("mode", ["hpa", "none"])
def test_explicit_mode_ignores_the_cluster(mode):
    meta = isvc(render(set_values={"autoscaling.mode": mode}, extra_args=KEDA_API))["metadata"]
    assert meta["annotations"]["serving.kserve.io/autoscalerClass"] == mode


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [("8", 9), ("16", 4), ("2", 35), ("0.5", 100), ("4000m", 18), ("1500m", 47), ("100", 1)],
)
def test_calibrated_cpu_target_follows_the_request(cpu, expected):
    p = predictor(render(set_values={"resources.requests.cpu": cpu}))
    assert p["scaleTarget"] == expected
    # the target in absolute CPU stays near 70 % of the measured saturation whatever the request
    if 1 < expected < 100:
        milli = float(cpu[:-1]) if cpu.endswith("m") else float(cpu) * 1000
        assert abs(expected / 100 * milli - 700) <= milli / 200 + 1


def test_calibrated_cpu_target_uses_the_calibration_values():
    p = predictor(render(set_values={"autoscaling.hpa.saturationCpuMillicores": "2000",
                                     "autoscaling.hpa.saturationPercent": "50"}))
    assert p["scaleTarget"] == 13  # 1000m of 8000m = 12.5 -> 13


def test_explicit_target_and_memory_default_are_not_calibrated():
    assert predictor(render(set_values={"autoscaling.hpa.targetUtilization": "60"}))["scaleTarget"] == 60
    p = predictor(render(set_values={"autoscaling.mode": "hpa", "autoscaling.hpa.metric": "memory"}))
    assert (p["scaleMetric"], p["scaleTarget"]) == ("memory", 80)


def test_calibrated_target_refuses_a_cpu_request_it_cannot_parse():
    with pytest.raises(manifests.RenderError, match="resources.requests.cpu .* autoscaling.hpa.targetUtilization"):
        manifests.render(set_values={"resources.requests.cpu": "1k"})
    # with an explicit target the request form does not matter
    assert predictor(render(set_values={"resources.requests.cpu": "1k", "autoscaling.hpa.targetUtilization": "50"}))


def test_keda_in_flight_query_and_80_percent_target():
    docs = render(CI / "keda-values.yaml")
    meta, p = isvc(docs)["metadata"], predictor(docs)
    assert meta["annotations"]["serving.kserve.io/autoscalerClass"] == "keda"
    assert (p["minReplicas"], p["maxReplicas"]) == (1, 4)
    assert "scaleMetric" not in p and "scaleTarget" not in p  # KServe's KEDA validation rejects scaleMetric
    (m,) = p["autoScaling"]["metrics"]
    assert m["type"] == "External"
    metric = m["external"]["metric"]
    assert metric["backend"] == "prometheus"
    assert metric["serverAddress"] == "http://prometheus-operated.monitoring.svc:9090"
    assert metric["query"] == (
        'sum(deepseek_ocr_requests_in_flight{namespace="ml",pod=~"r-deepseek-ocr-predictor-.*"}) or vector(0)'
    )
    assert m["external"]["target"] == {"type": "Value", "value": "6.4"}  # 0.8 x maxBatchSize 8
    assert p["autoScaling"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 600}}


@pytest.mark.parametrize(
    ("batch", "percent", "expected"),
    [(8, 80, "6.4"), (16, 80, "12.8"), (10, 80, "8"), (1, 80, "0.8"), (3, 80, "2.4"), (4, 50, "2"), (7, 33, "2.31")],
)
def test_keda_target_follows_batch_capacity(batch, percent, expected):
    docs = render(
        set_values={
            "autoscaling.mode": "keda",
            "batching.maxBatchSize": str(batch),
            "autoscaling.keda.targetUtilizationPercent": str(percent),
        }
    )
    (m,) = predictor(docs)["autoScaling"]["metrics"]
    assert m["external"]["target"]["value"] == expected
    assert args(docs)["max_batch_size"] == str(batch)


def test_keda_overrides_query_namespace_auth_and_target():
    docs = render(
        set_values={
            "autoscaling.mode": "keda",
            "autoscaling.keda.query": 'sum(my_gauge{ns="{{ .Release.Namespace }}"})',
            "autoscaling.keda.targetValue": "5",
            "autoscaling.keda.namespace": "tenant-a",
            "autoscaling.keda.authenticationRef": "prom-auth",
            "autoscaling.keda.authModes": "bearer",
        }
    )
    ext = predictor(docs)["autoScaling"]["metrics"][0]["external"]
    assert ext["metric"]["query"] == 'sum(my_gauge{ns="ml"})'
    assert ext["metric"]["namespace"] == "tenant-a"
    assert ext["target"]["value"] == "5"
    assert ext["authenticationRef"] == {"authModes": "bearer", "authenticationRef": {"name": "prom-auth"}}


def test_hpa_memory():
    p = predictor(render(CI / "hpa-memory-values.yaml"))
    assert (p["scaleMetric"], p["scaleMetricType"], p["scaleTarget"]) == ("memory", "Utilization", 70)
    assert p["maxReplicas"] == 3
    assert "autoScaling" not in p


def test_hpa_with_behavior_uses_resource_metric():
    docs = render(
        set_json={"autoscaling.behavior": '{"scaleDown": {"stabilizationWindowSeconds": 900}}'},
        set_values={"autoscaling.hpa.metric": "memory", "autoscaling.hpa.targetUtilization": "75"},
    )
    p = predictor(docs)
    assert not {"scaleMetric", "scaleTarget", "scaleMetricType"} & set(p)
    assert p["autoScaling"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 75}},
        }
    ]
    assert p["autoScaling"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 900}}


def test_none_mode_standard_fixed_replicas_cpu_only():
    docs = render(CI / "standard-none-values.yaml")
    meta, p = isvc(docs)["metadata"], predictor(docs)
    assert meta["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert meta["annotations"]["serving.kserve.io/autoscalerClass"] == "none"
    assert p["minReplicas"] == 2 and "maxReplicas" not in p
    assert not {"scaleMetric", "scaleTarget", "autoScaling"} & set(p)
    r = container(docs)["resources"]
    assert r["requests"] == {"cpu": "2", "memory": "8Gi"} and r["limits"] == {"cpu": "4", "memory": "12Gi"}
    a = args(docs)
    assert (a["device"], a["dtype"]) == ("cpu", "float32")
    assert "grpc_port" not in a and [p["name"] for p in container(docs)["ports"]] == ["http"]
    assert container(docs)["args"][-1] == "--enable_latency_logging=true"
    assert env(docs)["OMP_NUM_THREADS"]["value"] == "4"
    assert a["allow_remote_images"] == "true" and a["remote_image_hosts"] == "images.example.org"
    v = volumes(docs)
    assert "devshm" not in v and "torch-cache" not in v and "hf-cache" not in v
    assert v["hf-cache-ephemeral"]["emptyDir"]["sizeLimit"] == "20Gi"
    assert not by_kind(docs, "PersistentVolumeClaim")
    assert container(docs)["image"].endswith("@sha256:" + "0123456789abcdef" * 4)
    assert predictor(docs)["imagePullSecrets"] == [{"name": "regcred"}]
