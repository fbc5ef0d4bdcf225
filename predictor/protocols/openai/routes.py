"""OpenAI-compatible routes of our own (kserve's OpenAI layer imports vLLM, which we do not ship; see
docs/ARCHITECTURE.md).

Routes live under ``/openai/v1`` (kserve's layout, prefix from ``KSERVE_OPENAI_ROUTE_PREFIX``) and ``/v1``.
At ``/v1`` the model list and model routes are also KServe v1's: one response answers both protocols.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from predictor.config import Settings
from predictor.errors import InvalidRequest, ModelNotFound, NotReady, PredictorError
from predictor.ocr.aio import task_group
from predictor.ocr.documents import decode_base64
from predictor.ocr.remote_images import fetch_image
from predictor.ocr.runtime import Runtime
from predictor.ocr.types import Document, ResolvedOptions
from predictor.protocols.kserve.model import OcrModel
from predictor.protocols.openai import protocol as proto
from predictor.protocols.openai import vllm
from predictor.server.http_errors import OpenAIRoute, register_routes, sse_error_frame

OWNER = "deepseek-ai"


def openai_prefix() -> str:
    prefix = os.environ.get("KSERVE_OPENAI_ROUTE_PREFIX", "/openai")
    prefix = prefix if not prefix or prefix.startswith("/") else "/" + prefix
    return prefix.rstrip("/") + "/v1"


class OpenAIRoutes:
    def __init__(self, model: OcrModel):
        self.model = model
        self.created = int(time.time())

    @property
    def names(self) -> list[str]:
        return self.model.settings.all_model_names

    def runtime(self) -> Runtime:
        return self.model.require_runtime()

    # ---- models ---------------------------------------------------------------------------------------------

    def _card(self, name: str, ready: bool) -> dict[str, Any]:
        # OpenAI's Model fields plus KServe v1's name/ready, so both clients read the same response.
        return {"id": name, "object": "model", "created": self.created, "owned_by": OWNER, "name": name,
                "ready": ready}

    async def list_models(self) -> dict[str, Any]:
        ready = await self.model.healthy()
        return {"object": "list", "data": [self._card(n, ready) for n in self.names], "models": self.names}

    async def get_model(self, model_name: str) -> JSONResponse:
        if model_name not in self.names:
            raise ModelNotFound(f"model {model_name!r} does not exist; served: {', '.join(self.names)}",
                                param="model")
        if not await self.model.healthy():
            raise NotReady(f"model {model_name} is loading", retry_after=10)
        return JSONResponse(self._card(model_name, True))

    async def health(self) -> JSONResponse:
        state, reason = self.model.state()
        if state != "ready":
            error = NotReady(f"the model is {state}: {reason}", retry_after=1 if state == "draining" else 10)
            error.code = state  # loading | unloaded | draining | failed
            raise error
        runtime = self.runtime()
        return JSONResponse({"status": "ok", "model": self.model.name, "family": runtime.family.name,
                             "in_flight": runtime.engine.in_flight})

    # ---- chat -----------------------------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Any:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"body is not valid JSON: {exc}", param=None) from exc
        except RecursionError as exc:
            raise InvalidRequest("body is nested too deeply", param=None) from exc
        runtime = self.runtime()
        chat = proto.parse_chat_request(body, runtime.settings.max_images_per_request)
        if chat.model not in self.names:
            raise ModelNotFound(f"model {chat.model!r} does not exist; served: {', '.join(self.names)}",
                                param="model")
        try:  # resolved once, here: a bad option is refused before anything is fetched or decoded
            resolved = runtime.service.resolver.options(chat.options)
        except InvalidRequest as exc:
            raise (vllm.renamed(exc) if isinstance(body.get("vllm_xargs"), dict) else exc) from exc
        fetched = await _fetch_remote(chat.images, runtime.settings)
        documents = await asyncio.to_thread(_documents, chat, fetched, resolved, runtime)  # the one thread hop
        if chat.stream:
            return StreamingResponse(self._stream(chat, documents, runtime), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        output = await runtime.service.run_documents(documents, chat.request_id)
        return JSONResponse(proto.completion(chat, chat.model, output))

    async def _stream(self, chat: proto.ChatRequest, documents: list[Document],
                      runtime: Runtime) -> AsyncIterator[str]:
        stream = runtime.service.stream_documents(documents, chat.request_id)
        try:
            yield proto.chunk(chat, chat.model, role=True, content="")
            async for item in stream:
                if isinstance(item, str):
                    yield proto.chunk(chat, chat.model, content=item)
                else:
                    # Crops cannot stream: with figures, they come on the finishing chunk, beside the blocks.
                    yield proto.chunk(chat, chat.model, finish=item.finish_reason,
                                      ocr=item if chat.options.figures else None)
                    if chat.include_usage:
                        yield proto.chunk(chat, chat.model, usage=item)
        except PredictorError as exc:
            yield sse_error_frame(exc)
        finally:
            await stream.aclose()
        yield "data: [DONE]\n\n"


def _field(index: int) -> str:
    return f"image_url[{index}]"


def _is_remote(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


async def _fetch_remote(urls: list[str], settings: Settings) -> dict[int, bytes]:
    """The request's http(s) images by index, fetched concurrently; the first failure cancels the others."""
    async with task_group() as group:
        tasks = {i: group.create_task(fetch_image(url, _field(i), settings))
                 for i, url in enumerate(urls) if _is_remote(url)}
    return {i: task.result() for i, task in tasks.items()}


def _documents(chat: proto.ChatRequest, fetched: dict[int, bytes], resolved: ResolvedOptions,
               runtime: Runtime) -> list[Document]:
    """In a worker thread: decode each data URL's base64, then every input with the request's resolved options
    (CPU work, off the event loop)."""
    limit = runtime.settings.max_body_bytes
    items = [(fetched[i] if i in fetched else decode_base64(url, _field(i), limit), _field(i), chat.options, None)
             for i, url in enumerate(chat.images)]
    return runtime.service.resolver.documents(items, resolved)


def register(app: FastAPI, model: OcrModel) -> OpenAIRoutes:
    """Add our routes to ``app`` (``predictor.app.build_app`` does, before KServe's routes exist, so ours win
    on the paths both protocols share)."""
    routes = OpenAIRoutes(model)
    for prefix in dict.fromkeys([openai_prefix(), "/v1"]):
        router = APIRouter(prefix=prefix, route_class=OpenAIRoute)
        router.add_api_route("/chat/completions", routes.chat_completions, methods=["POST"])
        router.add_api_route("/models", routes.list_models, methods=["GET"])
        router.add_api_route("/models/{model_name}", routes.get_model, methods=["GET"])
        app.include_router(router)
        register_routes(app, router.routes)
    health = APIRouter(route_class=OpenAIRoute)
    health.add_api_route("/health", routes.health, methods=["GET"])
    app.include_router(health)
    register_routes(app, health.routes)
    return routes
