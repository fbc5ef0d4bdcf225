"""Assertions on the optional objects the chart renders, and every CI variant validating."""

from __future__ import annotations

import chart_manifests as manifests
import pytest
from chart_helpers import container, isvc, one, predictor, render

CI = manifests.CHART / "ci"

# ---------------------------------------------------------------- optional objects


def test_tailscale_load_balancer():
    docs = render(CI / "tailscale-values.yaml")
    svc = one(docs, "Service")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["loadBalancerClass"] == "tailscale"
    assert svc["metadata"]["annotations"]["tailscale.com/hostname"] == "deepseek-ocr-gb10"
    assert svc["metadata"]["annotations"]["tailscale.com/tags"] == "tag:k8s"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    # the Service must select exactly the predictor pods (not the helm test pod)
    assert svc["spec"]["selector"].items() <= predictor(docs)["labels"].items()
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "predictor"


def test_tailscale_needs_kubernetes_1_24():
    with pytest.raises(manifests.RenderError, match=r"tailscale.enabled needs Kubernetes >= 1.24"):
        manifests.render(CI / "tailscale-values.yaml", extra_args=("--kube-version", "1.23.5"))
    assert render(CI / "tailscale-values.yaml", extra_args=("--kube-version", "1.24.0"))


def test_monitoring_podmonitor_and_networkpolicy():
    docs = render(CI / "monitoring-values.yaml")
    pm = one(docs, "PodMonitor")
    assert pm["metadata"]["labels"]["release"] == "prometheus"
    assert pm["spec"]["podMetricsEndpoints"] == [{"port": "http", "path": "/metrics", "interval": "10s"}]
    assert pm["spec"]["selector"]["matchLabels"].items() <= predictor(docs)["labels"].items()
    np = one(docs, "NetworkPolicy")
    assert np["spec"]["podSelector"]["matchLabels"] == pm["spec"]["selector"]["matchLabels"]
    (rule,) = np["spec"]["ingress"]
    assert {p["port"] for p in rule["ports"]} == {8080, 8081}
    assert rule["from"][0] == {"podSelector": {}}
    assert rule["from"][1]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}


def test_podmonitor_sends_the_api_key_when_metrics_need_it():
    def endpoint(**values: str) -> dict:
        monitor = one(render(CI / "monitoring-values.yaml", set_values=values), "PodMonitor")
        (ep,) = monitor["spec"]["podMetricsEndpoints"]
        return ep

    bearer = {"type": "Bearer", "credentials": {"name": "ocr-key", "key": "api-key"}}
    assert endpoint(**{"auth.existingSecret": "ocr-key", "auth.metrics": "true"})["authorization"] == bearer
    rotated = endpoint(**{"auth.existingSecret": "ocr-key", "auth.metrics": "true", "auth.metricsKey": "scrape"})
    assert rotated["authorization"]["credentials"] == {"name": "ocr-key", "key": "scrape"}
    assert "authorization" not in endpoint(**{"auth.existingSecret": "ocr-key"})  # /metrics stays open: no key sent


def test_networkpolicy_without_peers_denies_all():
    docs = render(set_values={"networkPolicy.enabled": "true", "networkPolicy.allowSameNamespace": "false"})
    assert one(docs, "NetworkPolicy")["spec"]["ingress"] == []


def test_scrape_annotations_can_be_turned_off():
    default_ann = isvc(render())["metadata"]["annotations"]
    assert default_ann["serving.kserve.io/enable-prometheus-scraping"] == "true"
    assert default_ann["prometheus.kserve.io/port"] == "8080"
    ann = isvc(render(set_values={"metrics.scrapeAnnotations": "false"}))["metadata"]["annotations"]
    assert not any(k.startswith("prometheus.kserve.io") or "scraping" in k for k in ann)


def test_common_labels_and_annotations_are_strings():
    docs = render(
        # strings that YAML would read back as a number / bool unless the templates quote them
        set_json={
            "commonLabels": '{"team": "ocr", "cost-center": "1234"}',
            "annotations": '{"owner": "42", "flag": "true"}',
        }
    )
    for d in docs:
        assert d["metadata"]["labels"]["cost-center"] == "1234"
    ann = isvc(docs)["metadata"]["annotations"]
    assert (ann["owner"], ann["flag"]) == ("42", "true")
    assert predictor(docs)["labels"]["team"] == "ocr"


def test_fullname_override_names_everything():
    docs = render(set_values={"fullnameOverride": "ocr"})
    assert isvc(docs)["metadata"]["name"] == "ocr"
    assert one(docs, "PersistentVolumeClaim")["metadata"]["name"] == "ocr-hf-cache"
    e = {x["name"]: x["value"] for x in one(docs, "Pod")["spec"]["containers"][0]["env"]}
    assert e["READY_URL"].startswith("http://ocr-predictor.ml.svc")


# ---------------------------------------------------------------- every variant validates


def test_every_ci_variant_renders_and_validates(ci_values):
    for f in ci_values:
        docs = render(f)  # render() asserts the validator found no error
        assert isvc(docs)["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] in {
            "RawDeployment",
            "Standard",
        }
        r = container(docs)["resources"]
        for section in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(r[section]), (f.name, section)
