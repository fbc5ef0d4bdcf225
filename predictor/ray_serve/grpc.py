"""KServe v2 gRPC through Ray Serve's gRPC proxy, answered by kserve's own servicer inside each replica.

Serve's proxy owns the port and calls the replica method named like the RPC with the request message and a Serve
context; the replica hands both to kserve's ``InferenceServicer`` (the class the KServe server uses) over the
replica's model, and maps exceptions to status codes with kserve's own interceptor logic, as the KServe server does.
Two things differ from a plain gRPC server and are handled here:
- kserve's generated messages name their module ``grpc_predict_v2_pb2`` (generated without a package path) and the
  proxy pickles them to and from the replica: that name must import in both processes. The proxy imports this module
  (``add_servicer`` is its servicer function) and so does the replica, so the alias below exists in both.
- Serve's context gives metadata as tuples and has no ``abort``: ``_Context`` adapts it for kserve's code.
"""

from __future__ import annotations

import contextlib
import sys
from collections import namedtuple
from typing import Any

from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import add_GRPCInferenceServiceServicer_to_server

sys.modules.setdefault("grpc_predict_v2_pb2", pb)

SERVICER_FUNCTION = "predictor.ray_serve.grpc.add_servicer"
RPCS = {"ServerLive": pb.ServerLiveResponse, "ServerReady": pb.ServerReadyResponse,
        "ServerMetadata": pb.ServerMetadataResponse, "ModelReady": pb.ModelReadyResponse,
        "ModelMetadata": pb.ModelMetadataResponse, "ModelInfer": pb.ModelInferResponse,
        "RepositoryModelLoad": pb.RepositoryModelLoadResponse,
        "RepositoryModelUnload": pb.RepositoryModelUnloadResponse}
_Metadatum = namedtuple("_Metadatum", "key value")


def add_servicer(servicer: Any, server: Any) -> None:
    add_GRPCInferenceServiceServicer_to_server(servicer, server)


class _Aborted(Exception):
    pass


class _Context:
    """What kserve's servicer and interceptor use of a grpc context, on top of Serve's."""

    def __init__(self, serve_context: Any):
        self._ctx = serve_context

    def invocation_metadata(self) -> list[_Metadatum]:
        return [_Metadatum(k, v) for k, v in (self._ctx.invocation_metadata() or [])]

    def set_code(self, code: Any) -> None:
        self._ctx.set_code(code)

    def set_details(self, details: str) -> None:
        self._ctx.set_details(details)

    async def abort(self, code: Any, details: str = "") -> None:
        self._ctx.set_code(code)
        self._ctx.set_details(details or "")
        raise _Aborted(details)


class GrpcFrontend:
    """kserve's servicer over the model's KServe plane (every served name), called with Serve's request and
    context."""

    def __init__(self, model: Any, plane: Any = None):
        """``plane``: the KServe plane the replica's REST routes use (``app.state.kserve_plane``); a new one over
        ``model`` when not given."""
        from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
        from kserve.protocol.grpc.servicer import InferenceServicer

        from predictor.protocols.kserve.plane import build_plane
        from predictor.server.auth import KeyChecker

        plane = plane if plane is not None else build_plane(model)  # readiness and liveness ask the model
        self._servicer = InferenceServicer(plane.dataplane, plane.extension)
        self._errors = ExceptionToStatusInterceptor()
        self._keys = KeyChecker.from_settings(model.settings)  # the same API keys as the HTTP routes

    async def call(self, rpc: str, request: Any, serve_context: Any) -> Any:
        import grpc

        from predictor.server.auth import grpc_refusal

        context = _Context(serve_context)
        refused = grpc_refusal(self._keys, rpc, [(m.key, m.value) for m in context.invocation_metadata()])
        if refused is not None:
            context.set_code(grpc.StatusCode.UNAUTHENTICATED)
            context.set_details(refused)
            return RPCS[rpc]()
        try:
            return await getattr(self._servicer, rpc)(request, context)
        except Exception as exc:  # noqa: BLE001 - every error becomes a status code, as kserve's interceptor does
            with contextlib.suppress(_Aborted):  # the status is set on Serve's context; the body is empty
                await self._errors.handle_exception(exc, request, context, rpc)
            return RPCS[rpc]()


class GrpcMethods:
    """Mixin of the deployment: one method per RPC, named as Serve's proxy looks them up. The parameter must be
    called ``grpc_context`` for Serve to pass its context."""

    _grpc: GrpcFrontend


def _rpc(name: str) -> Any:
    async def method(self: GrpcMethods, request: Any, grpc_context: Any) -> Any:
        return await self._grpc.call(name, request, grpc_context)

    method.__name__ = method.__qualname__ = name
    return method


for _name in RPCS:
    setattr(GrpcMethods, _name, _rpc(_name))
