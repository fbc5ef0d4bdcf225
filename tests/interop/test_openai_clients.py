"""OpenAI-compatible clients that nobody here wrote: the openai SDK, LangChain's ChatOpenAI and LiteLLM, each with
an image part, plain, streamed and async (issue 19). LlamaIndex is not here: see setup.cfg's interop extra."""

from __future__ import annotations

import asyncio

import litellm
import openai
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from tests.interop.conftest import DATA_URL, MAX_TOKENS, MODEL

MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "Free OCR."},
                                         {"type": "image_url", "image_url": {"url": DATA_URL}}]}]


def test_openai_sdk_plain_stream_async(server, expected_free_ocr):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none")
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0)
    assert plain.choices[0].message.content == expected_free_ocr
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected_free_ocr

    async def call():
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="none") as aclient:
            return await aclient.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS)

    assert asyncio.run(call()).choices[0].message.content == expected_free_ocr


def test_langchain_chat_openai(server, expected_free_ocr):
    llm = ChatOpenAI(model=MODEL, base_url=f"{server.url}/v1", api_key="none", max_tokens=MAX_TOKENS, temperature=0)
    message = HumanMessage(content=[{"type": "text", "text": "Free OCR."},
                                    {"type": "image_url", "image_url": {"url": DATA_URL}}])
    assert llm.invoke([message]).content == expected_free_ocr
    assert "".join(chunk.content for chunk in llm.stream([message])) == expected_free_ocr
    assert [m.content for m in llm.batch([[message], [message]])] == [expected_free_ocr] * 2
    assert asyncio.run(llm.ainvoke([message])).content == expected_free_ocr
    # LangChain's provider-neutral image block, converted by langchain-openai into an image_url part
    block = HumanMessage(content=[{"type": "text", "text": "Free OCR."},
                                  {"type": "image", "base64": DATA_URL.split(",", 1)[1], "mime_type": "image/png"}])
    assert llm.invoke([block]).content == expected_free_ocr


def test_litellm(server, expected_free_ocr):
    kwargs = {"model": f"openai/{MODEL}", "api_base": f"{server.url}/v1", "api_key": "none",
              "messages": MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0}
    assert litellm.completion(**kwargs).choices[0].message.content == expected_free_ocr
    stream = litellm.completion(**kwargs, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == expected_free_ocr
    assert asyncio.run(litellm.acompletion(**kwargs)).choices[0].message.content == expected_free_ocr
