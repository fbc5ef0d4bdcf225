"""The ``kserve.Model`` that serves OCR over KServe v1, v2 REST and v2 gRPC.

Lifecycle: ``load()`` loads weights and starts the engine synchronously (tests, Ray Serve replicas);
kserve's ``ModelServer`` instead calls ``start_engine()``, which runs ``load()`` in a thread so liveness answers
at once while ``/v1/models/{name}`` and ``/v2/models/{name}/ready`` answer 503 until the model is ready (kserve
only awaits the hook after marking the model registered). A failed background load is logged and ends the process
with a non-zero status. ``loaded`` says whether requests can be served; ``stop_engine()`` stops the engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any

import kserve
from grpc_interceptor import exceptions as grpc_exc
from kserve import InferRequest

from predictor.config import Settings
from predictor.errors import NotReady, PredictorError
from predictor.ocr.aio import gather_or_cancel
from predictor.ocr.figures import within_budget
from predictor.ocr.runtime import Runtime, load_runtime
from predictor.protocols.kserve import io as kserve_io
from predictor.protocols.kserve.io import ParsedRequest

log = logging.getLogger(__name__)

_GRPC_BY_STATUS = {400: grpc_exc.InvalidArgument, 413: grpc_exc.InvalidArgument, 404: grpc_exc.NotFound,
                   401: grpc_exc.Unauthenticated, 403: grpc_exc.PermissionDenied,
                   429: grpc_exc.ResourceExhausted, 503: grpc_exc.Unavailable, 504: grpc_exc.DeadlineExceeded}


@lru_cache(maxsize=32)
def _dual_class(cls: type[PredictorError]) -> type[PredictorError]:
    """``cls`` that kserve's gRPC interceptor also maps to the right status code (it knows GrpcException)."""
    grpc_cls = _GRPC_BY_STATUS.get(cls.status, grpc_exc.Internal)
    return type(cls.__name__, (cls, grpc_cls), {})


def for_kserve(exc: PredictorError) -> PredictorError:
    dual = _dual_class(type(exc))(exc.message, param=exc.param, retry_after=exc.retry_after)
    dual.details = exc.message  # what gRPC clients see
    return dual


class OcrModel(kserve.Model):
    def __init__(self, settings: Settings):
        super().__init__(settings.model_name)
        self.settings = settings
        self.runtime: Runtime | None = None
        # kserve's engine hook: start() marks the model registered, start_engine() loads in the background.
        self.engine = True
        self.ready = True
        self.draining = False  # SIGTERM received: readiness 503, new requests 503 (predictor.server.drain)
        self.unloading = False
        self.unloaded = False
        self._load_lock = asyncio.Lock()
        self._background = False  # True once kserve's start_engine() owns loading

    # ---- lifecycle ------------------------------------------------------------------------------------------

    def load(self) -> bool:
        """Load weights and start the engine, blocking; a second call does nothing. Raises on failure.

        Under kserve's ModelServer the weights load in the background (``start_engine``), and kserve's dataplane
        calls ``load()`` on every v1/v2 request while the model is not ready: that call must not start a second,
        blocking load on the event loop (nor bring back a model unloaded on purpose), so it only reports.
        """
        if self._background:
            return self.loaded
        self._load()
        return True

    def _load(self) -> None:
        if self.runtime is None:
            self.runtime = load_runtime(self.settings)
            self.unloaded = False
            log.info("model %s ready", self.name)

    async def start_engine(self) -> None:
        self._background = True
        try:
            await asyncio.to_thread(self._load)
        except Exception as exc:  # noqa: BLE001 - any load failure must stop the process visibly
            log.error("model load failed: %s", exc, exc_info=not isinstance(exc, PredictorError | RuntimeError))
            logging.shutdown()
            os._exit(1)

    def stop_engine(self) -> None:
        """Stop the engine's worker thread (requests still running fail); safe to call more than once."""
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            runtime.engine.stop()

    @property
    def loaded(self) -> bool:
        return self.runtime is not None

    async def healthy(self) -> bool:
        """Readiness: loaded, not draining or unloading, and the engine has not hit an unrecoverable device error
        or stalled."""
        if self.runtime is None or self.draining or self.unloading:
            return False
        return self.alive()[0]

    def alive(self) -> tuple[bool, str]:
        """The one liveness answer (``/v2/health/live``, gRPC ``ServerLive``, Ray's ``check_health``): False, with
        the reason, once the engine cannot recover (its worker thread ended, a sticky device error, a stall), so
        the pod or replica is restarted. A model still loading, or unloaded on purpose, is alive."""
        runtime = self.runtime  # an unload may clear it from another thread
        if runtime is None:
            return True, ""
        if not runtime.engine.worker.thread.is_alive():
            return False, "the engine worker thread is not running"
        health = runtime.engine.health()
        return health.ok, health.reason

    def state(self) -> tuple[str, str]:
        """``ready``, or why not: ``draining``, ``unloaded`` (or unloading), ``loading`` or ``failed``, and a reason."""
        runtime = self.runtime
        if self.draining:
            return "draining", "the server is shutting down; retry on another replica"
        if self.unloading or (runtime is None and self.unloaded):
            return "unloaded", "load it with POST /v2/repository/models/{name}/load"
        if runtime is None:
            return "loading", "the weights are loading; retry later"
        health = runtime.engine.health()
        if not health.ok:
            return "failed", health.reason
        return "ready", ""

    def require_runtime(self) -> Runtime:
        if self.draining:
            raise NotReady("the server is shutting down; retry on another replica", retry_after=1)
        if self.unloading or (self.runtime is None and self.unloaded):
            raise NotReady("the model is unloaded; load it with POST /v2/repository/models/{name}/load",
                           retry_after=10)
        if self.runtime is None:
            raise NotReady("the model is still loading; retry later", retry_after=10)
        return self.runtime

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request holds an engine slot (True), or the timeout passes (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.runtime is not None and self.runtime.engine.in_flight > 0:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def unload(self) -> None:
        """Refuse new requests, let in-flight ones finish (within --shutdown_grace), then free the engine."""
        if self.runtime is None:
            return
        self.unloading = True
        try:
            await self.wait_idle(self.settings.shutdown_grace)
            await asyncio.to_thread(self.stop_engine)
            self.unloaded = True
        finally:
            self.unloading = False
        log.info("model %s unloaded", self.name)

    async def reload(self) -> None:
        if self.runtime is not None:
            return
        async with self._load_lock:
            await asyncio.to_thread(self._load)

    # ---- metadata -------------------------------------------------------------------------------------------

    def get_input_types(self) -> list[dict[str, Any]]:
        return kserve_io.V2_INPUTS

    def get_output_types(self) -> list[dict[str, Any]]:
        return kserve_io.V2_OUTPUTS

    # ---- inference ------------------------------------------------------------------------------------------

    async def preprocess(self, payload: dict[str, Any] | bytes | InferRequest,
                         headers: dict[str, str] | None = None) -> ParsedRequest:
        try:
            runtime = self.require_runtime()
            if isinstance(payload, InferRequest):
                return await asyncio.to_thread(kserve_io.parse_v2, payload, runtime.service.resolver)
            return await asyncio.to_thread(kserve_io.parse_v1, payload, runtime.service.resolver)
        except PredictorError as exc:
            raise for_kserve(exc) from exc

    async def predict(self, parsed: ParsedRequest, headers: dict[str, str] | None = None) -> Any:
        try:
            runtime = self.require_runtime()
            if parsed.stream:
                return self._stream_v1(runtime, parsed)
            outputs = await gather_or_cancel(*(runtime.service.run_documents([document])
                                              for document in parsed.documents))
            # One response for all instances: their crops share one budget, as each document's pages do.
            within_budget([page for output in outputs for page in output.page_outputs],
                          runtime.settings.max_response_bytes)
        except PredictorError as exc:
            raise for_kserve(exc) from exc
        if parsed.protocol == "v2":
            return kserve_io.v2_response(parsed, outputs, self.name)
        return kserve_io.v1_response(outputs, self.name)

    async def _stream_v1(self, runtime: Runtime, parsed: ParsedRequest) -> AsyncIterator[str]:
        """KServe v1 streaming: server-sent events with text deltas, then the full prediction."""
        stream = runtime.service.stream_documents(parsed.documents)
        try:
            async for item in stream:
                if isinstance(item, str):
                    yield f"data: {json.dumps({'text': item})}\n\n"
                else:
                    final = kserve_io.v1_response([item], self.name)["predictions"][0]
                    yield f"data: {json.dumps(final)}\n\n"
        except PredictorError as exc:
            yield f"data: {json.dumps({'error': exc.message})}\n\n"
        finally:
            await stream.aclose()
        yield "data: [DONE]\n\n"
