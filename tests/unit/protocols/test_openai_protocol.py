"""OpenAI chat request parsing: where OCR options come from, and which win."""

from __future__ import annotations

import pytest


def test_openai_options_top_level_and_extra_body():
    from predictor.errors import InvalidRequest
    from predictor.protocols.openai.protocol import parse_chat_request

    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    body = {"model": "m", "messages": [{"role": "system", "content": "be nice"},
                                       {"role": "user", "content": [{"type": "text", "text": "Read it"}, part]}],
            "mode": "base", "max_completion_tokens": 9, "user": "ignored-like-openai",
            "extra_body": {"max_completion_tokens": 7, "task": "markdown"}}
    chat = parse_chat_request(body, max_images=4)
    assert chat.options.mode == "base" and chat.options.max_tokens == 7  # the explicit object wins
    assert chat.options.task == "markdown" and chat.options.prompt is None  # a task overrides the message text
    plain = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": [part, {
        "type": "text", "text": " Read it "}]}]}, max_images=4)
    assert plain.options.prompt == "Read it" and plain.images == ["data:image/png;base64,AAAA"]
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request({**body, "extra_body": {"colour": 1}}, max_images=4)
    assert info.value.param == "extra_body.colour"
