"""Bad values are refused by values.schema.json (or a template check) with a message naming the value."""

from __future__ import annotations

import json
import subprocess

import chart_manifests as manifests
import pytest

SCHEMA_ERR = "values don't meet the specifications of the schema"


def refused(tmp_path, values: dict | None = None, set_values: dict | None = None) -> str:
    files = []
    if values is not None:
        f = tmp_path / "bad-values.yaml"
        f.write_text(json.dumps(values))  # JSON is YAML; keeps numbers typed (1.5 stays a float)
        files.append(f)
    with pytest.raises(manifests.RenderError) as exc:
        manifests.render(*files, set_values=set_values)
    return str(exc.value)


@pytest.mark.parametrize(
    ("values", "path", "words"),
    [
        ({"autoscaling": {"minReplicas": -1}}, "/autoscaling/minReplicas", "minimum"),
        ({"autoscaling": {"maxReplicas": -3}}, "/autoscaling/maxReplicas", "minimum"),
        ({"autoscaling": {"minReplicas": "two"}}, "/autoscaling/minReplicas", "want integer"),
        ({"autoscaling": {"mode": "kpa"}}, "/autoscaling/mode", "'auto', 'keda', 'hpa', 'none'"),
        ({"autoscaling": {"hpa": {"metric": "rps"}}}, "/autoscaling/hpa/metric", "'cpu', 'memory'"),
        ({"autoscaling": {"hpa": {"targetUtilization": 150}}}, "/autoscaling/hpa/targetUtilization", "maximum"),
        ({"autoscaling": {"hpa": {"saturationCpuMillicores": 1.5}}}, "/autoscaling/hpa/saturationCpuMillicores",
         "want integer"),
        ({"autoscaling": {"hpa": {"saturationPercent": 0}}}, "/autoscaling/hpa/saturationPercent", "minimum"),
        ({"resources": {"gpu": {"count": 1.5}}}, "/resources/gpu/count", "want integer"),
        ({"resources": {"gpu": {"count": -1}}}, "/resources/gpu/count", "minimum"),
        ({"resources": {"limits": {"cpu": "lots"}}}, "/resources/limits/cpu", ""),
        (
            {"huggingface": {"token": {"existingSecret": "hf-secret", "value": "hf_x"}}},
            "/huggingface/token/existingSecret",
            "value must be ''",
        ),
        ({"deploymentMode": "Serverless"}, "/deploymentMode", "'RawDeployment', 'Standard'"),
        ({"model": {"dtype": "int4"}}, "/model/dtype", "'auto', 'bfloat16', 'float16', 'float32'"),
        ({"model": {"device": "tpu"}}, "/model/device", "'auto', 'cuda', 'cpu'"),
        ({"model": {"id": "", "storageUri": ""}}, "/model", "anyOf"),
        ({"model": {"storageUri": "not a uri"}}, "/model/storageUri", "pattern"),
        ({"batching": {"maxBatchSize": 0}}, "/batching/maxBatchSize", "minimum"),
        ({"batching": {"maxBatchTokens": -5}}, "/batching/maxBatchTokens", "minimum"),
        ({"terminationGracePeriodSeconds": 30}, "/terminationGracePeriodSeconds", "minimum"),
        ({"storage": {"hfCache": {"size": "twenty"}}}, "/storage/hfCache/size", "pattern"),
        ({"storage": {"hfCache": {"accessModes": ["ReadWriteSometimes"]}}}, "/storage/hfCache/accessModes/0", ""),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", "'Always', 'IfNotPresent', 'Never'"),
        ({"autoscaling": {"keda": {"serverAddress": "prometheus:9090"}}}, "/autoscaling/keda/serverAddress", "pattern"),
        ({"autoscaling": {"keda": {"targetValue": -2}}}, "/autoscaling/keda/targetValue", ""),
        ({"commonLabels": {"cost-center": 1234}}, "/commonLabels/cost-center", "want string"),
        ({"scheduling": {"nodeSelector": {"gpu": True}}}, "/scheduling/nodeSelector/gpu", "want string"),
        ({"autoscalling": {"mode": "keda"}}, "", "'autoscalling' not allowed"),
        ({"autoscaling": {"keda": {"treshold": 3}}}, "/autoscaling/keda", "'treshold' not allowed"),
        # the server refuses --allow_remote_images without an allow-list, so the chart does too
        ({"remoteImages": {"enabled": True, "allowedHosts": []}}, "/remoteImages/allowedHosts", "minItems"),
    ],
)
def test_schema_rejects_bad_value_with_readable_message(tmp_path, values, path, words):
    msg = refused(tmp_path, values)
    assert SCHEMA_ERR in msg, msg
    assert f"at '{path}'" in msg, msg
    assert words in msg, msg


def test_gpu_count_fraction_from_command_line_is_rejected(tmp_path):
    # --set keeps 1.5 as a string; still refused
    msg = refused(tmp_path, set_values={"resources.gpu.count": "1.5"})
    assert "at '/resources/gpu/count'" in msg and "want integer" in msg


def test_missing_limit_is_rejected(tmp_path):
    # KServe would silently fill the missing memory limit with 2Gi (less than the 16Gi request)
    msg = refused(tmp_path, set_values={"resources.limits.memory": "null"})
    assert "at '/resources/limits'" in msg and "missing property 'memory'" in msg


@pytest.mark.parametrize(
    ("set_values", "words"),
    [
        ({"autoscaling.minReplicas": "3", "autoscaling.maxReplicas": "2"}, "autoscaling.maxReplicas (2) must be >="),
        ({"model.device": "cuda", "resources.gpu.count": "0"}, "model.device=cuda needs resources.gpu.count >= 1"),
        ({"server.grpc.port": "8080"}, "server.grpc.port must differ from server.httpPort"),
        (
            {"server.maxNewTokens": "100", "server.defaultMaxTokens": "200"},
            "server.defaultMaxTokens (200) must be <= server.maxNewTokens (100)",
        ),
    ],
)
def test_template_cross_checks(tmp_path, set_values, words):
    msg = refused(tmp_path, set_values=set_values)
    assert words in msg, msg


def test_none_mode_ignores_max_below_min():
    docs = manifests.render(
        set_values={"autoscaling.mode": "none", "autoscaling.minReplicas": "3", "autoscaling.maxReplicas": "1"}
    )
    assert manifests.validate_all(docs) == []


def test_lint_strict_passes_defaults_and_fails_bad_values():
    helm = manifests.helm_binary()
    ok = subprocess.run([helm, "lint", "--strict", str(manifests.CHART)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(
        [helm, "lint", "--strict", str(manifests.CHART), "--set", "autoscaling.mode=kpa"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert "autoscaling/mode" in bad.stdout + bad.stderr


def _undocumented(text: str) -> list[str]:
    """Keys of a values.yaml with no comment above them, above an earlier sibling (a documented group),
    or above one of their parents."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "- ")) or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        documented = False
        for prev in reversed(lines[:i]):
            p_strip = prev.strip()
            if not p_strip:
                continue
            p_indent = len(prev) - len(prev.lstrip())
            if p_strip.startswith("#"):
                if p_indent <= indent:
                    documented = True
                    break
                continue
            if p_indent > indent or p_strip.startswith("- "):
                continue  # inside an earlier sibling's block
            indent = p_indent  # a sibling (same indent) or the parent (less): keep looking above it
        if not documented:
            out.append(f"{i + 1}: {stripped}")
    return out


def test_every_value_is_documented():
    assert _undocumented((manifests.CHART / "values.yaml").read_text()) == []
    # the check itself can fail
    assert _undocumented("a: 1\n# doc\nb:\n  c: 2\n") == ["1: a: 1"]
    assert _undocumented("x:\n  y: 1\n") == ["1: x:", "2: y: 1"]


def test_schema_covers_every_value():
    """values.yaml and values.schema.json list the same keys, so the schema rejects any typo."""
    import yaml

    values = yaml.safe_load((manifests.CHART / "values.yaml").read_text())
    schema = json.loads((manifests.CHART / "values.schema.json").read_text())

    def walk(v, s, prefix=""):
        missing = []
        if isinstance(v, dict) and "properties" in s:
            for k, sub in v.items():
                if k not in s["properties"]:
                    missing.append(prefix + k)
                else:
                    missing += walk(sub, s["properties"][k], prefix + k + ".")
            assert s.get("additionalProperties") is False or prefix.rstrip(".") in {
                "resources.requests",
                "resources.limits",
                "server.extraEnv",
            }, prefix
        return missing

    assert walk(values, schema) == []
