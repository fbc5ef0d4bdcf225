"""The chart hands the server its API key from a Secret (never from a plain value) and the helm test sends it."""

from __future__ import annotations

import chart_manifests as manifests
import pytest
from chart_helpers import by_kind, env, render

API_KEY_VALUES = manifests.CHART / "ci" / "api-key-values.yaml"


def _test_pod_env(docs: list[dict]) -> dict[str, dict]:
    (pod,) = [d for d in by_kind(docs, "Pod") if d["metadata"]["name"].endswith("-test-ocr")]
    return {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}


def test_default_has_no_api_key():
    docs = render()
    assert "PREDICTOR_API_KEY" not in env(docs) and "PREDICTOR_METRICS_AUTH" not in env(docs)
    assert "API_KEY" not in _test_pod_env(docs)


def test_api_key_comes_from_the_secret_for_server_and_helm_test():
    docs = render(API_KEY_VALUES)
    ref = {"secretKeyRef": {"name": "deepseek-ocr-api-key", "key": "api-key"}}
    assert env(docs)["PREDICTOR_API_KEY"] == {"name": "PREDICTOR_API_KEY", "valueFrom": ref}
    assert env(docs)["PREDICTOR_METRICS_AUTH"]["value"] == "true"
    assert _test_pod_env(docs)["API_KEY"]["valueFrom"] == ref


def test_api_key_value_is_refused():
    """A key written into values would land in the Helm release record: only a Secret reference is accepted."""
    with pytest.raises(manifests.RenderError):
        render(set_values={"auth.value": "s3cret-key"})
