"""The playground page (`server.ui`, default true) reaches the server as `--ui` (KServe chart) and as the `ui`
builder argument (RayService chart); false turns it off."""

from __future__ import annotations

import chart_manifests as manifests
import pytest
import yaml
from chart_helpers import args, render


@pytest.mark.parametrize(("value", "flag"), [(None, "true"), ("false", "false"), ("true", "true")])
def test_kserve_chart_passes_ui(value, flag):
    docs = render(set_values={"server.ui": value} if value else None)
    assert args(docs)["ui"] == flag


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("false", False)])
def test_ray_chart_passes_ui(value, expected):
    docs = render(chart=manifests.RAY_CHART, set_values={"server.ui": value} if value else None)
    (svc,) = [d for d in docs if d["kind"] == "RayService"]
    (application,) = yaml.safe_load(svc["spec"]["serveConfigV2"])["applications"]
    assert application["args"]["ui"] is expected


def test_ui_must_be_a_boolean():
    with pytest.raises(manifests.RenderError, match="ui"):
        manifests.render(set_values={"server.ui": "maybe"})
