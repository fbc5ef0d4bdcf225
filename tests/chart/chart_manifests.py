"""Validate rendered Kubernetes manifests offline, and render the chart for tests.

Built-in kinds are checked with kubernetes-validate (strict: unknown fields are errors), the InferenceService with
the JSON schema derived from KServe's CRD (vendored in tests/chart/crds/, see SOURCE.md there), the Prometheus
Operator PodMonitor with a small schema of the fields the chart uses, and every object's metadata labels/annotations
must be strings (an unquoted `80` passes the CRD schema but breaks `kubectl apply`).

CLI: ``helm template r charts/deepseek-ocr | python tests/chart/chart_manifests.py`` prints "ok" or one line per error.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "deepseek-ocr"
CRDS = Path(__file__).resolve().parent / "crds"
CRD_SCHEMA = CRDS / "inferenceservice_v1beta1.json"
CRD_YAML = CRDS / "serving.kserve.io_inferenceservices.yaml"
RAY_CHART = ROOT / "charts" / "deepseek-ocr-ray"
RAYSERVICE_SCHEMA = CRDS / "rayservice_v1.json"
RAYSERVICE_CRD = CRDS / "ray.io_rayservices.yaml"
# Oldest and newest Kubernetes schemas the built-ins are checked against.
K8S_VERSIONS = ("1.25.0", "1.33.0")

_META = jsonschema.Draft7Validator(
    {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
            "namespace": {"type": "string"},
            "labels": {
                "type": "object",
                "additionalProperties": {
                    "type": "string",
                    "maxLength": 63,
                    "pattern": r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$",
                },
            },
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
)

# Only the PodMonitor fields the chart renders (our own schema; the Prometheus Operator CRD is not vendored).
_PODMONITOR = jsonschema.Draft7Validator(
    {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "podMetricsEndpoints"],
                "properties": {
                    "selector": {
                        "type": "object",
                        "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                    },
                    "namespaceSelector": {
                        "type": "object",
                        "properties": {"matchNames": {"type": "array", "items": {"type": "string"}}},
                    },
                    "podMetricsEndpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": {"type": "string", "pattern": r"^[0-9]+(ms|s|m|h)$"},
                                # SafeAuthorization: a credential type and a key of a Secret in the monitor's namespace
                                "authorization": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "type": {"type": "string"},
                                        "credentials": {
                                            "type": "object",
                                            "additionalProperties": False,
                                            "required": ["key"],
                                            "properties": {"name": {"type": "string", "minLength": 1},
                                                           "key": {"type": "string", "minLength": 1},
                                                           "optional": {"type": "boolean"}},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    }
)


@functools.cache
def _rayservice_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(RAYSERVICE_SCHEMA.read_text()))


@functools.cache
def _isvc_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(CRD_SCHEMA.read_text()))


def _path(err: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in err.absolute_path) or "<root>"


def errors(doc: dict) -> list[str]:
    """All problems found in one manifest, as readable strings (empty when valid)."""
    import kubernetes_validate as kv  # imported lazily: only the chart-test venv has it

    out = [f"metadata.{_path(e)}: {e.message}" for e in _META.iter_errors(doc.get("metadata") or {})]
    kind = (doc.get("apiVersion"), doc.get("kind"))
    if kind == ("serving.kserve.io/v1beta1", "InferenceService"):
        out += [f"{_path(e)}: {e.message}" for e in _isvc_validator().iter_errors(doc)]
    elif kind == ("ray.io/v1", "RayService"):
        out += [f"{_path(e)}: {e.message}" for e in _rayservice_validator().iter_errors(doc)]
    elif kind == ("monitoring.coreos.com/v1", "PodMonitor"):
        out += [f"{_path(e)}: {e.message}" for e in _PODMONITOR.iter_errors(doc)]
    else:
        for version in K8S_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                out.append(f"[k8s {version}] {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}")
            except kv.SchemaNotFoundError as e:
                out.append(f"[k8s {version}] no schema: {e}")
    return out


def validate_all(docs: list[dict]) -> list[str]:
    return [f"{d.get('kind')}/{(d.get('metadata') or {}).get('name')}: {e}" for d in docs for e in errors(d)]


def helm_binary() -> str | None:
    venv_helm = ROOT / ".venv-chart" / "bin" / "helm"
    if venv_helm.exists():
        return str(venv_helm)
    return shutil.which("helm")


class RenderError(Exception):
    """helm refused the values; str() is helm's message."""


def render(
    *values_files: str | Path,
    set_values: dict[str, str] | None = None,
    set_json: dict[str, str] | None = None,
    release: str = "r",
    namespace: str = "ml",
    show_only: str | None = None,
    extra_args: tuple[str, ...] = (),
    chart: Path = CHART,
) -> list[dict]:
    """`helm template` the chart and return the parsed objects (RenderError with helm's stderr on failure)."""
    cmd = [helm_binary() or "helm", "template", release, str(chart), "--namespace", namespace]
    for f in values_files:
        cmd += ["-f", str(f)]
    for k, v in (set_values or {}).items():
        cmd += ["--set", f"{k}={v}"]
    for k, v in (set_json or {}).items():
        cmd += ["--set-json", f"{k}={v}"]
    if show_only:
        cmd += ["--show-only", show_only]
    cmd += list(extra_args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RenderError(proc.stderr.strip())
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def main() -> int:
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    bad = validate_all(docs)
    print("\n".join(bad) if bad else f"ok ({len(docs)} objects)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
