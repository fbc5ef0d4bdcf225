"""The Ray Serve deployment: every replica holds one model and one engine and serves the same app.

The routes come from ``predictor.app.build_app``, the factory the KServe server and the API tests use, so both
variants answer every protocol identically. Why a plain deployment and not ``kserve.ray.RayModel``: see
docs/RAY.md (RayModel keeps one non-scaling driver process in front of the replicas and cannot stream).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from predictor.config import set_serving_environment

set_serving_environment()  # in every replica process, before anything imports torch (as ``python -m predictor``)

from ray import serve  # noqa: E402 - after the environment above
from ray.serve.config import AutoscalingConfig  # noqa: E402

from predictor.ray_serve.grpc import GrpcFrontend, GrpcMethods  # noqa: E402
from predictor.ray_serve.options import DEPLOYMENT_NAME, deployment_options, parse_builder_args  # noqa: E402

log = logging.getLogger("predictor.ray_serve")


# `@serve.ingress()` without an app: Serve asks the replica for its ASGI app (`__serve_build_asgi_app__`) after
# `__init__`, so the app can hold this replica's own loaded model. `@serve.ingress(app)` would cloudpickle one
# module-level app at class definition, before any model exists.
@serve.deployment(name=DEPLOYMENT_NAME)
@serve.ingress()
class OcrDeployment(GrpcMethods):
    async def __init__(self, args: dict[str, Any]):
        from predictor.app import build_app
        from predictor.ray_serve.metrics import MetricsMirror

        # The replica checks again what the builder could not check on the head: the checkpoint on this node,
        # the device it was given. A ConfigError or LoadError here fails the deployment with its message.
        settings, _ = parse_builder_args(args, check_host=True)
        self._app = build_app(settings)
        self.model = self._app.state.model
        self._grpc = GrpcFrontend(self.model, self._app.state.kserve_plane)  # KServe v2 gRPC via Serve's gRPC proxy
        # Serve routes no traffic to a replica until __init__ returns: ready means the weights are loaded.
        await asyncio.to_thread(self.model.load)
        self._mirror = asyncio.get_running_loop().create_task(MetricsMirror().run())
        log.info("replica ready: %s from %s", settings.all_model_names, settings.model_source)

    def __serve_build_asgi_app__(self) -> Any:
        return self._app

    def check_health(self) -> None:
        """Raising makes Serve replace this replica: the model's one liveness answer (a dead engine thread, a
        sticky device error or a stalled worker), the same that turns ``/v2/health/live`` and gRPC ``ServerLive``
        red."""
        ok, reason = self.model.alive()
        if not ok:
            raise RuntimeError(f"the engine is not alive: {reason}")

    def __del__(self) -> None:
        mirror = getattr(self, "_mirror", None)
        if mirror is not None:
            mirror.cancel()
        model = getattr(self, "model", None)
        if model is not None:
            model.stop_engine()


def build(args: dict[str, Any]) -> Any:
    """Application builder: option names as keys (strings from ``serve run``, typed values from YAML)."""
    import ray

    settings, options = parse_builder_args(dict(args), check_host=False)
    gpus = ray.cluster_resources().get("GPU", 0.0) if ray.is_initialized() else 0.0
    deploy = deployment_options(settings, options, cluster_gpus=gpus)
    AutoscalingConfig.model_validate(deploy["autoscaling_config"])  # min <= max and friends, before deploying
    return OcrDeployment.options(**deploy).bind(dict(args))
