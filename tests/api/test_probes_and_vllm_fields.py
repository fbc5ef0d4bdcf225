"""Probes every client sends, and what code written for vLLM's DeepSeek-OCR recipe asks (issues 19 and 24.6).

Reproductions: ``/v2`` listed the repository extension while it answered 403; ``/v2/health/live`` had no ``live``
field (kserve's ``InferenceRESTClient(v2).is_server_live()`` returned None); ``/health`` said "loading" for an
unloaded, draining or failed model; ``:explain`` answered 501 about an explainer host; ``response_format``,
``skip_special_tokens`` and ``vllm_xargs`` were ignored; the Hugging Face id of the weights was not a model name.
"""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from tests.conftest import png_bytes

B64 = base64.b64encode(png_bytes()).decode()
MODEL = "deepseek-ocr"
HUB_ID = "deepseek-ai/DeepSeek-OCR-2"  # the tiny checkpoint is DeepSeek-OCR-2's architecture


def _get(app, method: str, path: str, **kwargs) -> httpx.Response:
    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app", timeout=120) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(run())


def _chat(model: str = MODEL, **extra) -> dict:
    return {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + B64}},
        {"type": "text", "text": "Free OCR."}]}], **extra}


@pytest.fixture()
def app(app_model):
    return app_model[0]


def test_server_metadata_lists_only_enabled_extensions(app):
    body = _get(app, "GET", "/v2").json()
    assert "model_repository_extension" not in body["extensions"], body
    assert "binary_tensor_data" in body["extensions"]


def test_v2_liveness_answers_in_the_v2_shape(app):
    body = _get(app, "GET", "/v2/health/live").json()
    assert body["live"] is True


def test_explain_is_a_404_naming_the_route(app):
    response = _get(app, "POST", f"/v1/models/{MODEL}:explain", json={"instances": [{"image": B64}]})
    assert response.status_code == 404, response.text
    assert ":explain" in response.text and "not supported" in response.text


def test_health_names_the_state(tiny_v2_dir, app_model):
    from predictor.app import build_app
    from predictor.config import Settings

    idle = build_app(Settings(model_dir=tiny_v2_dir, device="cpu"))  # never loaded
    model = idle.state.model
    codes = {}
    for state, setup in (("loading", {}), ("unloaded", {"unloaded": True}), ("draining", {"draining": True})):
        for key, value in setup.items():
            setattr(model, key, value)
        response = _get(idle, "GET", "/health")
        assert response.status_code == 503 and "retry-after" in response.headers, response.text
        codes[state] = response.json()["error"]["code"]
    assert codes == {"loading": "loading", "unloaded": "unloaded", "draining": "draining"}, codes

    app, loaded = app_model
    beat = loaded.runtime.engine.worker.heartbeat
    beat.fail("AcceleratorError: device lost")
    try:
        response = _get(app, "GET", "/health")
    finally:
        beat.fatal = None
    assert response.status_code == 503 and response.json()["error"]["code"] == "failed", response.text
    assert "device lost" in response.json()["error"]["message"]


@pytest.mark.parametrize("value", [{"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": "x"}},
                                   "json"])
def test_response_format_other_than_text_is_a_400(app, value):
    response = _get(app, "POST", "/v1/chat/completions", json=_chat(response_format=value))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "response_format"


def test_response_format_text_is_served(app):
    response = _get(app, "POST", "/v1/chat/completions", json=_chat(response_format={"type": "text"}))
    assert response.status_code == 200, response.text


def test_skip_special_tokens_false_returns_the_raw_text(app):
    plain = _get(app, "POST", "/v1/chat/completions", json=_chat()).json()
    raw = _get(app, "POST", "/v1/chat/completions", json=_chat(skip_special_tokens=False)).json()
    kept = _get(app, "POST", "/v1/chat/completions", json=_chat(skip_special_tokens=True)).json()
    assert raw["choices"][0]["message"]["content"] == plain["ocr"]["pages"][0]["raw_text"]
    assert kept["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]


def test_vllm_xargs_whitelist_outside_the_vocabulary_is_a_400(app):
    body = _chat(vllm_xargs={"ngram_size": 30, "window_size": 90, "whitelist_token_ids": [128821, 128822]})
    response = _get(app, "POST", "/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "vllm_xargs.whitelist_token_ids"
    assert "128821" in response.json()["error"]["message"]


def test_vllm_xargs_inside_the_vocabulary_is_served(app):
    body = _chat(vllm_xargs={"ngram_size": 3, "window_size": 9, "whitelist_token_ids": [9, 10]})
    assert _get(app, "POST", "/v1/chat/completions", json=body).status_code == 200


@pytest.mark.parametrize("xargs, param", [({"ngram_size": 3, "window_size": 2}, "vllm_xargs.window_size"),
                                          ({"ngram_size": -1}, "vllm_xargs.ngram_size"),
                                          ({"whitelist_token_ids": "9"}, "vllm_xargs.whitelist_token_ids"),
                                          ({"mystery": 1}, "vllm_xargs.mystery")])
def test_vllm_xargs_bad_values_are_400s_naming_them(app, xargs, param):
    response = _get(app, "POST", "/v1/chat/completions", json=_chat(vllm_xargs=xargs))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize("field, value", [("repetition_penalty", 1.2), ("top_k", 5), ("frequency_penalty", 0.5),
                                          ("presence_penalty", 0.5), ("logit_bias", {"9": 5}), ("min_p", 0.1),
                                          ("guided_json", {"type": "object"}), ("best_of", 2)])
def test_fields_that_would_change_the_result_are_refused(app, field, value):
    response = _get(app, "POST", "/v1/chat/completions", json=_chat(**{field: value}))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field


def test_neutral_values_of_those_fields_are_served(app):
    body = _chat(repetition_penalty=1.0, top_k=-1, frequency_penalty=0, presence_penalty=0.0, logit_bias={})
    assert _get(app, "POST", "/v1/chat/completions", json=body).status_code == 200


def test_hub_id_of_the_weights_is_a_model_name(app):
    listed = _get(app, "GET", "/v1/models").json()
    assert HUB_ID in [card["id"] for card in listed["data"]], listed
    response = _get(app, "POST", "/v1/chat/completions", json=_chat(model=HUB_ID))
    assert response.status_code == 200, response.text
    assert response.json()["model"] == HUB_ID


def test_recipe_on_a_grounding_page_keeps_the_tags_only_when_asked(fitted_grounding_dir):
    """A checkpoint fitted to write a grounding page: vLLM's recipe (``skip_special_tokens: false``) gets the raw
    page with DeepSeek's tags, as its parser expects; the default gets the clean text."""
    from predictor.app import build_app
    from predictor.config import Settings
    from predictor.testing.fitted import TARGETS

    app = build_app(Settings(model_dir=fitted_grounding_dir, device="cpu", default_max_tokens=400))
    app.state.model.load()
    td_ids = app.state.model.runtime.family.tokenizer.convert_tokens_to_ids(["<td>", "</td>"])
    try:
        raw = _get(app, "POST", "/v1/chat/completions", json=_chat(
            model=HUB_ID, max_tokens=400, skip_special_tokens=False,
            vllm_xargs={"ngram_size": 30, "window_size": 90, "whitelist_token_ids": td_ids})).json()
        clean = _get(app, "POST", "/v1/chat/completions", json=_chat(max_tokens=400)).json()
    finally:
        app.state.model.stop_engine()
    assert raw["choices"][0]["message"]["content"] == TARGETS["grounding"]
    assert "<|ref|>" not in clean["choices"][0]["message"]["content"]
    assert "Fitted Page" in clean["choices"][0]["message"]["content"]
