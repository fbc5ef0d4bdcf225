"""The chart's serveConfigV2, for every values variant, is a config Ray itself accepts, with no key Ray would ignore,
and its builder arguments are options the builder knows (the RayService's only check is at deploy time).

`ServeDeploySchema` ignores unknown keys (a misspelled `max_ongoing_request` would pass and do nothing), so every
mapping is also checked against the fields of Ray's own models, and autoscaling configs are validated on their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "deepseek-ocr-ray"
VARIANTS = [None, *sorted(p.name for p in (CHART / "ci").glob("*.yaml"))]
sys.path.insert(0, str(ROOT / "tests" / "chart"))
from chart_manifests import helm_binary  # noqa: E402


def _serve_config(variant: str | None) -> str:
    helm = helm_binary()
    if helm is None:
        message = "helm missing: run scripts/install-k8s-tools.sh (make chart-test installs it)"
        if os.environ.get("RAY_TESTS_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    cmd = [helm, "template", "r", str(CHART), "--show-only", "templates/rayservice.yaml"]
    if variant:
        cmd += ["-f", str(CHART / "ci" / variant)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    return yaml.safe_load(out)["spec"]["serveConfigV2"]


def strict_errors(config: dict) -> list[str]:
    """Keys Ray would silently ignore, plus what Ray's models refuse."""
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import DeploymentSchema, ServeApplicationSchema, ServeDeploySchema, gRPCOptionsSchema

    errors = [f"config: unknown key {k!r}" for k in set(config) - set(ServeDeploySchema.model_fields)]
    grpc = config.get("grpc_options") or {}
    errors += [f"grpc_options: unknown key {k!r}" for k in set(grpc) - set(gRPCOptionsSchema.model_fields)]
    for app in config.get("applications", []):
        errors += [f"application: unknown key {k!r}" for k in set(app) - set(ServeApplicationSchema.model_fields)]
        for dep in app.get("deployments", []):
            errors += [f"deployment: unknown key {k!r}" for k in set(dep) - set(DeploymentSchema.model_fields)]
            auto = dep.get("autoscaling_config") or {}
            known = set(AutoscalingConfig.model_fields)
            errors += [f"autoscaling_config: unknown key {k!r}" for k in set(auto) - known]
            try:
                AutoscalingConfig.model_validate(auto)
            except ValueError as exc:
                errors.append(f"autoscaling_config: {exc}")
    try:
        ServeDeploySchema.model_validate(config)
    except ValueError as exc:
        errors.append(str(exc))
    return errors


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v or "defaults")
def test_serve_config_is_strictly_valid_for_ray_and_the_builder(variant):
    from predictor.ray_serve.options import DEPLOYMENT_NAME, parse_builder_args

    config = yaml.safe_load(_serve_config(variant))
    assert strict_errors(config) == []
    (app,) = config["applications"]
    assert app["import_path"] == "predictor.ray_serve:build"
    assert [d["name"] for d in app["deployments"]] == [DEPLOYMENT_NAME]  # an override for a name that exists
    for function in (config.get("grpc_options") or {}).get("grpc_servicer_functions", []):
        module, name = function.rsplit(".", 1)
        assert callable(getattr(__import__(module, fromlist=[name]), name)), function  # importable as Serve does
    settings, options = parse_builder_args(app["args"], check_host=False)  # what the builder does on the head
    auto = app["deployments"][0]["autoscaling_config"]
    assert (options.min_replicas, options.max_replicas) == (auto["min_replicas"], auto["max_replicas"])
    assert app["deployments"][0]["max_ongoing_requests"] > settings.max_batch_size + settings.max_queue


def test_the_strict_check_catches_what_ray_alone_lets_through():
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load(_serve_config(None))
    dep = config["applications"][0]["deployments"][0]
    dep["max_ongoing_request"] = dep.pop("max_ongoing_requests")
    dep["autoscaling_config"]["min_replica"] = 1
    ServeDeploySchema.model_validate(config)  # Ray alone accepts both typos
    errors = strict_errors(config)
    assert "deployment: unknown key 'max_ongoing_request'" in errors
    assert "autoscaling_config: unknown key 'min_replica'" in errors
    config["grpc_options"]["grpc_servicer_function"] = config["grpc_options"].pop("grpc_servicer_functions")
    assert "grpc_options: unknown key 'grpc_servicer_function'" in strict_errors(config)
    dep["autoscaling_config"] = {"min_replicas": 3, "max_replicas": 2}
    assert any("autoscaling_config" in e for e in strict_errors(config))
