"""Ray's gRPC frontend answers readiness and liveness from the model, like the KServe server's: ``ServerReady`` and
``ModelReady`` are false before the weights load and after the engine dies, and ``ServerLive`` turns false when the
engine cannot recover. The methods called are the deployment's own (``GrpcMethods``, what Serve's gRPC proxy
calls on a replica), over a model in this process: Serve routes nothing to a replica before its weights load, so
that state is reachable only here, and no Ray cluster is needed."""

from __future__ import annotations

import asyncio

from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from predictor.app import build_app
from predictor.config import Settings
from predictor.protocols.kserve.model import OcrModel
from predictor.ray_serve.grpc import GrpcFrontend, GrpcMethods

ALIAS = "ocr-alias"


class _ServeContext:
    def invocation_metadata(self) -> list[tuple[str, str]]:
        return []

    def set_code(self, code) -> None:
        raise AssertionError(f"a probe must not fail: {code}")

    def set_details(self, details: str) -> None:
        pass


class _Replica(GrpcMethods):
    """What ``OcrDeployment.__init__`` builds, without Serve: the app, its model and the gRPC frontend on the
    app's KServe plane."""

    def __init__(self, settings: Settings):
        app = build_app(settings)
        self.model: OcrModel = app.state.model
        self._grpc = GrpcFrontend(self.model, app.state.kserve_plane)


def _probe(replica: _Replica) -> dict[str, bool]:
    async def run() -> dict[str, bool]:
        ctx = _ServeContext()
        return {"live": (await replica.ServerLive(pb.ServerLiveRequest(), ctx)).live,
                "server_ready": (await replica.ServerReady(pb.ServerReadyRequest(), ctx)).ready,
                "model_ready": (await replica.ModelReady(pb.ModelReadyRequest(name="deepseek-ocr"), ctx)).ready,
                "alias_ready": (await replica.ModelReady(pb.ModelReadyRequest(name=ALIAS), ctx)).ready}

    return asyncio.run(run())


def test_grpc_readiness_and_liveness_ask_the_model(tiny_v2_dir):
    replica = _Replica(Settings(model_dir=tiny_v2_dir, device="cpu", served_model_names=[ALIAS], max_batch_size=1))
    model = replica.model
    assert _probe(replica) == {"live": True, "server_ready": False, "model_ready": False, "alias_ready": False}
    model.load()
    try:
        assert _probe(replica) == dict.fromkeys(("live", "server_ready", "model_ready", "alias_ready"), True)
        model.runtime.engine.worker.stop()  # the engine thread ends while the model is still registered
        assert _probe(replica) == dict.fromkeys(("live", "server_ready", "model_ready", "alias_ready"), False)
    finally:
        model.stop_engine()
