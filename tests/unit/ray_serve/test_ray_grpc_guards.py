"""The Ray Serve gRPC frontend honours the same API keys and repository switch as the KServe server (it runs
kserve's servicer itself, outside kserve's gRPC server and its interceptors)."""

from __future__ import annotations

import asyncio

import grpc
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from predictor.config import Settings
from predictor.protocols.kserve.model import OcrModel
from predictor.ray_serve.grpc import GrpcFrontend

KEY = "ray-key-0123456789"


class ServeContext:
    """The part of Ray Serve's gRPC context the frontend uses: metadata in, status code and details out."""

    def __init__(self, metadata: list[tuple[str, str]]):
        self.metadata, self.code, self.details = metadata, None, ""

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self.metadata

    def set_code(self, code) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details


def _call(frontend: GrpcFrontend, rpc: str, request, metadata: list[tuple[str, str]]) -> ServeContext:
    context = ServeContext(metadata)
    asyncio.run(frontend.call(rpc, request, context))
    return context


def test_keys_and_repository_switch(tiny_v2_dir):
    model = OcrModel(Settings(model_dir=tiny_v2_dir, device="cpu", api_key=[KEY]))  # not loaded: cheap
    frontend = GrpcFrontend(model)
    infer = pb.ModelInferRequest(model_name="deepseek-ocr")
    assert _call(frontend, "ModelInfer", infer, []).code == grpc.StatusCode.UNAUTHENTICATED
    wrong = _call(frontend, "ModelInfer", infer, [("authorization", "Bearer nope-nope-nope")])
    assert wrong.code == grpc.StatusCode.UNAUTHENTICATED and "nope" not in wrong.details
    live = _call(frontend, "ServerLive", pb.ServerLiveRequest(), [])
    assert live.code is None  # probes stay open
    unload = pb.RepositoryModelUnloadRequest(model_name="deepseek-ocr")
    assert _call(frontend, "RepositoryModelUnload", unload, [("authorization", f"Bearer {KEY}")]).code == \
        grpc.StatusCode.PERMISSION_DENIED
