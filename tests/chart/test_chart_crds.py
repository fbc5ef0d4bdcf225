"""The vendored CRDs are the files SOURCE.md names, and the derived schemas are reproducible from them."""

from __future__ import annotations

import json
import re

import crd_schema
import pytest

FILES = sorted(p for p in crd_schema.CRDS.iterdir() if p.name != "SOURCE.md")


def _sections() -> dict[str, str]:
    text = crd_schema.SOURCE.read_text()
    parts = re.split(r"^## `?([^`\s]+)`?\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_vendored_file_has_a_section_with_its_checksum():
    sums = crd_schema.source_checksums()
    assert FILES, "no vendored files"
    assert sorted(sums) == [p.name for p in FILES], "SOURCE.md sections and files differ"
    for p in FILES:
        assert crd_schema.sha256(p) == sums[p.name], f"{p.name} changed: update its sha256 in SOURCE.md"


def test_every_upstream_file_names_repository_and_tag():
    for name, body in _sections().items():
        if "derived from:" in body:
            continue
        assert re.search(r"^- upstream: https://github\.com/\S+", body, re.M), name
        assert re.search(r"^- tag: `[^`]+`", body, re.M), name


@pytest.mark.parametrize("name", [n for n, b in _sections().items() if "derived from:" in b])
def test_derived_schema_is_reproducible(name):
    m = re.search(r"derived from: `([^`]+)`, version `([^`]+)`", _sections()[name])
    assert m, f"{name}: 'derived from: `<crd>`, version `<v>`' missing"
    crd = crd_schema.load_crd(crd_schema.CRDS / m.group(1))
    assert crd_schema.strict_schema(crd, m.group(2)) == json.loads((crd_schema.CRDS / name).read_text())


def test_derived_schema_rejects_unknown_fields_but_accepts_status():
    from jsonschema import Draft7Validator

    schema = json.loads((crd_schema.CRDS / "inferenceservice_v1beta1.json").read_text())
    base = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "x"},
            "spec": {"predictor": {"containers": [{"name": "kserve-container", "image": "i"}]}}}
    v = Draft7Validator(schema)
    assert not list(v.iter_errors(base))
    typo = json.loads(json.dumps(base))
    typo["spec"]["predictor"]["minReplica"] = 1
    assert [e.message for e in v.iter_errors(typo)], "a misspelled predictor field must be rejected"
    assert not list(v.iter_errors({**base, "status": {"anything": {"goes": 1}}}))
