"""Request fields that code written for vLLM (and OpenAI) sends beside ours, read or refused, never ignored when
they would change the result.

vLLM's DeepSeek-OCR recipe sends ``skip_special_tokens: false`` (it parses the grounding tags in the raw output)
and ``vllm_xargs`` for its n-gram logits processor: ``ngram_size``, ``window_size`` and ``whitelist_token_ids``.
They map onto our ``raw`` option and our repetition guard. Sampling fields that we do not implement change what a
model writes, so a value that is not the neutral one is a 400 naming the field; their neutral values (and fields
that change nothing, such as ``user``) are accepted as OpenAI does.
"""

from __future__ import annotations

from typing import Any

from predictor.errors import InvalidRequest
from predictor.ocr.options import parse_options

# field -> values that leave the result as it is (anything else would have to be honoured, and cannot be)
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "frequency_penalty": (0, 0.0), "presence_penalty": (0, 0.0), "repetition_penalty": (1, 1.0),
    "top_k": (-1, 0), "min_p": (0, 0.0), "best_of": (1,), "use_beam_search": (False,), "length_penalty": (1, 1.0),
    "logit_bias": ({},), "prompt_logprobs": (0,), "allowed_token_ids": ([],), "bad_words": ([],),
    "truncate_prompt_tokens": (), "guided_json": (), "guided_regex": (), "guided_choice": (),
    "guided_grammar": (), "structured_outputs": (),
}
# vllm_xargs key -> our option
XARGS = {"ngram_size": "ngram_size", "window_size": "ngram_window", "whitelist_token_ids": "ngram_whitelist"}
FIELD_OF_OPTION = {option: f"vllm_xargs.{key}" for key, option in XARGS.items()}


def refuse_unhonoured(body: dict[str, Any]) -> None:
    for field, neutral in _NEUTRAL.items():
        value = body.get(field)
        if value is not None and not any(value == n and isinstance(value, bool) == isinstance(n, bool)
                                         for n in neutral):
            raise InvalidRequest(f"{field} is not supported by this server (it would change the output)",
                                 param=field)
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind != "text":
            raise InvalidRequest("response_format: only {\"type\": \"text\"} is supported (OCR output is the "
                                 "page's text, not JSON)", param="response_format")


def vllm_options(body: dict[str, Any]) -> dict[str, Any]:
    """Our option values from vLLM's fields (empty when the request has none); values checked here."""
    values: dict[str, Any] = {}
    skip = body.get("skip_special_tokens")
    if skip is not None:
        if not isinstance(skip, bool):
            raise InvalidRequest("skip_special_tokens must be a boolean", param="skip_special_tokens")
        if not skip:
            values["raw"] = True
    xargs = body.get("vllm_xargs")
    if xargs is None:
        return values
    if not isinstance(xargs, dict):
        raise InvalidRequest("vllm_xargs must be an object", param="vllm_xargs")
    for key, value in xargs.items():
        if key not in XARGS:
            raise InvalidRequest(f"vllm_xargs.{key} is not supported; accepted: {', '.join(XARGS)}",
                                 param=f"vllm_xargs.{key}")
        values[XARGS[key]] = value
    try:
        parse_options({k: v for k, v in values.items() if k != "raw"})
    except InvalidRequest as exc:
        raise renamed(exc) from exc
    return values


def renamed(exc: InvalidRequest) -> InvalidRequest:
    """``exc`` with our option's name replaced by the vLLM field the caller used."""
    field = FIELD_OF_OPTION.get(exc.param or "")
    if field is None:
        return exc
    message = exc.message.replace(exc.param or "", field)
    return type(exc)(message, param=field, retry_after=exc.retry_after)
