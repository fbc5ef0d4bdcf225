"""Code written for vLLM's DeepSeek-OCR recipe, with only the base URL changed (issue 19, item 4).

The recipe's request: model ``deepseek-ai/DeepSeek-OCR`` (the hub id: served by default), ``Free OCR.``,
``temperature 0``, and in ``extra_body`` ``skip_special_tokens: false`` (raw output, grounding tags kept) and
``vllm_xargs`` for the n-gram guard, whose whitelist holds DeepSeek-OCR's ids of ``<td>`` and ``</td>``. The image is
a data URL here (no network in tests). The tiny test tokenizer has 388 tokens, so the recipe's ids are outside its
vocabulary (a 400 naming the field); the tiny tokenizer's own ``<td>`` ids give the recipe's behaviour.
"""

from __future__ import annotations

import openai
import pytest

from tests.interop.conftest import DATA_URL, HUB_ID, MAX_TOKENS, reference_text

MESSAGES = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": DATA_URL}},
                                         {"type": "text", "text": "Free OCR."}]}]
RECIPE_EXTRA_BODY = {
    "skip_special_tokens": False,
    "vllm_xargs": {"ngram_size": 30, "window_size": 90, "whitelist_token_ids": [128821, 128822]},
}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(api_key="EMPTY", base_url=f"{server.url}/v1", timeout=3600)


def test_the_hub_id_is_listed(client):
    assert HUB_ID in [m.id for m in client.models.list().data]


def test_recipe_body_names_whitelist_ids_outside_the_vocabulary(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=HUB_ID, messages=MESSAGES, max_tokens=2048, temperature=0.0,
                                       extra_body=RECIPE_EXTRA_BODY)
    assert info.value.body["param"] == "vllm_xargs.whitelist_token_ids"
    assert "128821" in info.value.body["message"]


def test_recipe_body_returns_the_raw_text(server, client):
    td_ids = [9, 10]  # <td>, </td> in the tiny tokenizer
    extra = {**RECIPE_EXTRA_BODY, "vllm_xargs": {**RECIPE_EXTRA_BODY["vllm_xargs"], "whitelist_token_ids": td_ids}}
    response = client.chat.completions.create(model=HUB_ID, messages=MESSAGES, max_tokens=MAX_TOKENS,
                                              temperature=0.0, extra_body=extra)
    assert response.model == HUB_ID
    assert response.choices[0].message.content == reference_text(server, "Free OCR.", raw=True)
    clean = client.chat.completions.create(model=HUB_ID, messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0.0,
                                           extra_body={"skip_special_tokens": True})
    assert clean.choices[0].message.content == reference_text(server, "Free OCR.")


def test_fields_that_would_change_the_output_are_refused(client):
    for field, value in (("repetition_penalty", 1.05), ("top_k", 20), ("response_format", {"type": "json_object"})):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=HUB_ID, messages=MESSAGES, max_tokens=MAX_TOKENS,
                                           extra_body={field: value})
        assert info.value.body["param"] == field
