"""The vendored CRDs in tests/chart/crds/ and the strict JSON schemas derived from them.

A CRD's `openAPIV3Schema` accepts unknown fields when applied through a lenient client, so the derived schema
adds `"additionalProperties": false` to every object that lists its properties: a misspelled key in a rendered
manifest then fails here instead of being pruned silently by the API server. The root object (apiVersion, kind,
metadata are checked elsewhere) and objects marked `x-kubernetes-preserve-unknown-fields` stay open.

CLI: ``python tests/chart/crd_schema.py CRD.yaml VERSION > kind_version.json`` regenerates a vendored schema.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import yaml

CRDS = Path(__file__).resolve().parent / "crds"
SOURCE = CRDS / "SOURCE.md"


def _strict(node, root: bool = False):
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if "properties" in out and not root and not out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


def strict_schema(crd: dict, version: str) -> dict:
    """The openAPIV3Schema of one served version of a CRD, with unknown fields rejected."""
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return _strict(v["schema"]["openAPIV3Schema"], root=True)
    raise KeyError(f"{crd['metadata']['name']} has no version {version}")


def load_crd(path: Path) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    (crd,) = [d for d in yaml.load_all(path.read_text(), Loader=loader) if d]
    return crd


def source_checksums() -> dict[str, str]:
    """File name -> sha256 as recorded in SOURCE.md (one `## <file>` section per file, with a `- sha256:` line)."""
    sums: dict[str, str] = {}
    current = None
    for line in SOURCE.read_text().splitlines():
        if m := re.match(r"^## `?([^`\s]+)`?\s*$", line):
            current = m.group(1)
        elif (m := re.match(r"^- sha256: `?([0-9a-f]{64})`?", line)) and current:
            sums[current] = m.group(1)
    return sums


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    json.dump(strict_schema(load_crd(Path(sys.argv[1])), sys.argv[2]), sys.stdout, separators=(",", ":"),
              sort_keys=True)
