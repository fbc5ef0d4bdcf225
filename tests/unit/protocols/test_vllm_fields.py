"""vLLM's request fields, as its DeepSeek-OCR recipe sends them, map onto our options (issue 19, item 4)."""

from __future__ import annotations

import pytest

PART = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
RECIPE_XARGS = {"ngram_size": 30, "window_size": 90, "whitelist_token_ids": [128821, 128822]}


def _parse(**extra):
    from predictor.protocols.openai.protocol import parse_chat_request

    body = {"model": "m", "messages": [{"role": "user", "content": [PART, {"type": "text", "text": "Free OCR."}]}],
            **extra}
    return parse_chat_request(body, max_images=4)


def test_recipe_fields_become_raw_output_and_the_guard():
    options = _parse(skip_special_tokens=False, vllm_xargs=RECIPE_XARGS).options
    assert options.raw is True
    assert (options.ngram_size, options.ngram_window, options.ngram_whitelist) == (30, 90, (128821, 128822))
    assert options.prompt == "Free OCR."


def test_skip_special_tokens_true_keeps_the_clean_text():
    assert _parse(skip_special_tokens=True).options.raw is False
    assert _parse().options.ngram_whitelist is None


@pytest.mark.parametrize("extra, param", [({"skip_special_tokens": "no"}, "skip_special_tokens"),
                                          ({"vllm_xargs": [1]}, "vllm_xargs"),
                                          ({"vllm_xargs": {"window_size": 0}}, "vllm_xargs.window_size"),
                                          ({"vllm_xargs": {"whitelist_token_ids": [-1]}},
                                           "vllm_xargs.whitelist_token_ids"),
                                          ({"response_format": {"type": "json_object"}}, "response_format"),
                                          ({"top_k": 40}, "top_k")])
def test_bad_or_unhonourable_fields_are_400s_naming_them(extra, param):
    from predictor.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as info:
        _parse(**extra)
    assert info.value.param == param
