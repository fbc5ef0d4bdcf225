"""Document options on every protocol (OpenAI top level and extra_body, KServe v1 instance, v2 parameters):
bad values are 400s naming the field; pages and dpi select and render PDF pages, and the response says how."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest

from tests.conftest import blank_pdf, png_bytes

MODEL = "deepseek-ocr"
CHAT, V1, V2 = "/v1/chat/completions", f"/v1/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer"
PDF3 = base64.b64encode(blank_pdf(3)).decode()
BAD = [("pages", "0"), ("pages", "3-1"), ("pages", "1-999"), ("dpi", 10), ("dpi", "high"),
       ("table_format", "csv"), ("math", "tex"), ("figures", "maybe")]


def _chat(data: str = PDF3, mime: str = "application/pdf", **extra) -> dict:
    url = f"data:{mime};base64,{data}"
    return {"model": MODEL, "max_tokens": 1, **extra,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}


def _v1(data: str = PDF3, **fields) -> dict:
    return {"instances": [{"image": data, "max_tokens": 1, **fields}]}


def _v2(data: str = PDF3, **params) -> dict:
    return {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [data]}],
            "parameters": {"max_tokens": 1, **params}}


def _post(app, path: str, body: dict) -> httpx.Response:
    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app", timeout=120) as client:
            return await client.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})

    return asyncio.run(run())


def _named(response: httpx.Response) -> str:
    error = response.json()["error"]
    return f"{error.get('param')} {error['message']}" if isinstance(error, dict) else error


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v}" for n, v in BAD])
def test_bad_values_are_400s_naming_the_field_on_every_protocol(app_model, name, value):
    app = app_model[0]
    requests = {"openai top level": (CHAT, _chat(**{name: value}), name),
                "openai extra_body": (CHAT, _chat(extra_body={name: value}), f"extra_body.{name}"),
                "kserve v1": (V1, _v1(**{name: value}), f"instances[0].{name}"),
                "kserve v2": (V2, _v2(**{name: value}), name)}
    for where, (path, body, field) in requests.items():
        if name == "pages" and value == "1-999":
            field = field.replace("extra_body.", "")  # found against the document, after parsing
        response = _post(app, path, body)
        assert response.status_code == 400, (where, response.text)
        assert field in _named(response), (where, response.text)


def test_one_selected_page_keeps_its_number_on_every_protocol(app_model):
    app = app_model[0]
    chat = _post(app, CHAT, _chat(pages="2")).json()
    assert [p["page"] for p in chat["ocr"]["pages"]] == [2]
    v1 = _post(app, V1, _v1(pages="2")).json()["predictions"][0]
    assert v1["page"] == 2 and "pages" not in v1
    v2 = _post(app, V2, _v2(pages="3")).json()
    pages = json.loads(next(o for o in v2["outputs"] if o["name"] == "pages")["data"][0])
    assert [p["page"] for p in pages] == [3]


def test_dpi_renders_a_letter_page_at_1700_by_2200_and_says_so(app_model):
    app = app_model[0]
    chat = _post(app, CHAT, _chat(data=base64.b64encode(blank_pdf(1)).decode(), extra_body={"dpi": 200})).json()
    (page,) = chat["ocr"]["pages"]
    assert (page["width"], page["height"], page["dpi"], page["scaled_to_pixel_limit"]) == (1700, 2200, 200, False)
    v1 = _post(app, V1, _v1(data=base64.b64encode(blank_pdf(1)).decode(), dpi=72)).json()["predictions"][0]
    assert (v1["width"], v1["height"], v1["dpi"]) == (612, 792, 72)


def test_figures_asked_for_an_image_without_figures_answer_an_empty_list(app_model):
    app = app_model[0]
    image = base64.b64encode(png_bytes()).decode()
    chat = _post(app, CHAT, _chat(data=image, mime="image/png", figures=True)).json()
    assert chat["ocr"]["pages"][0]["figures"] == [] and chat["ocr"]["pages"][0]["page"] == 1
    plain = _post(app, V1, _v1(data=image)).json()["predictions"][0]
    assert "figures" not in plain and plain["width"] == 640 and "raw_text" in plain


@pytest.fixture(scope="module")
def tight_app(fitted_grounding_dir: str):
    """A checkpoint fitted to emit a grounding page with one figure, and no room for crops in a response."""
    from predictor.app import build_app
    from predictor.config import Settings

    app = build_app(Settings(model_dir=fitted_grounding_dir, device="cpu", max_batch_size=2, max_queue=4,
                             default_max_tokens=400, max_response_bytes=1))
    app.state.model.load()
    yield app
    app.state.model.stop_engine()


def test_crops_past_the_response_budget_are_reported_not_a_500(tight_app):
    image = base64.b64encode(png_bytes()).decode()
    r = _post(tight_app, V1, {"instances": [{"image": image, "task": "markdown", "figures": True}] * 2})
    assert r.status_code == 200, r.text
    for prediction in r.json()["predictions"]:
        assert prediction["figures"] == [] and "![](images/0_0.jpg)" in prediction["text"]
        (skipped,) = prediction["figures_skipped"]
        assert skipped["name"] == "0_0.jpg" and skipped["reason"] == "response size limit (1 bytes)"
