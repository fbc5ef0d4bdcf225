"""LangChain's ChatOpenAI(logprobs=True) and LiteLLM read our logprobs (the packages come with the interop extra)."""

from __future__ import annotations

import base64

from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from tests.conftest import png_bytes

MODEL = "deepseek-ocr"
DATA_URL = "data:image/png;base64," + base64.b64encode(png_bytes(text="interop")).decode()
FIXED = {"min_tokens": 10, "ngram_size": 0}


def _value(item, name):
    return item[name] if isinstance(item, dict) else getattr(item, name)


def test_langchain_chat_openai_logprobs_streamed_and_not(server):
    llm = ChatOpenAI(model=MODEL, base_url=server.url + "/v1", api_key="x", max_tokens=10, temperature=0,
                     logprobs=True, top_logprobs=2, extra_body=FIXED)
    message = HumanMessage(content=[{"type": "image_url", "image_url": {"url": DATA_URL}}])
    answer = llm.invoke([message])
    entries = answer.response_metadata["logprobs"]["content"]
    assert len(entries) == 10 and all(e["logprob"] <= 0 and len(e["top_logprobs"]) == 2 for e in entries)
    chunks = list(llm.stream([message]))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert merged.content == answer.content
    streamed = merged.response_metadata["logprobs"]["content"]
    assert [e["logprob"] for e in streamed] == [e["logprob"] for e in entries]


def test_litellm_completion_logprobs(server):
    import litellm

    response = litellm.completion(model=f"openai/{MODEL}", api_base=server.url + "/v1", api_key="x",
                                  messages=[{"role": "user", "content": [
                                      {"type": "image_url", "image_url": {"url": DATA_URL}}]}],
                                  max_tokens=10, temperature=0, logprobs=True, top_logprobs=2, **FIXED)
    content = _value(response.choices[0].logprobs, "content")
    assert len(content) == 10
    assert all(_value(e, "logprob") <= 0 and len(_value(e, "top_logprobs")) == 2 for e in content)
