"""Small accessors over rendered manifests."""

from __future__ import annotations

import chart_manifests as manifests


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def isvc(docs: list[dict]) -> dict:
    return one(docs, "InferenceService")


def predictor(docs: list[dict]) -> dict:
    return isvc(docs)["spec"]["predictor"]


def container(docs: list[dict]) -> dict:
    (c,) = predictor(docs)["containers"]
    return c


def args(docs: list[dict]) -> dict[str, str]:
    """`--flag=value` args as a dict (every chart arg uses the `=` form)."""
    out = {}
    for a in container(docs)["args"]:
        assert a.startswith("--") and "=" in a, a
        k, v = a[2:].split("=", 1)
        assert k not in out, f"duplicate flag {k}"
        out[k] = v
    return out


def env(docs: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in container(docs).get("env", [])}


def volumes(docs: list[dict]) -> dict[str, dict]:
    return {v["name"]: v for v in predictor(docs).get("volumes", [])}


def mounts(docs: list[dict]) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in container(docs).get("volumeMounts", [])}


def render(*files, **kw) -> list[dict]:
    docs = manifests.render(*files, **kw)
    bad = manifests.validate_all(docs)
    assert not bad, "\n".join(bad)
    return docs
