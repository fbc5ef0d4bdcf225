"""KServe's model repository extension (load / unload over REST and gRPC), off unless a flag turns it on.

Left as kserve ships it, anyone who can reach the port could unload the only model: inference then answered 404,
OpenAI requests hung, readiness still said ready and nothing could load it back. Here it refuses with 403 unless
``--enable_repository_extension``; when on, unload drains in-flight requests, stops the engine and turns every
readiness route 503 (the model stays registered, so its routes answer "not ready", not "not found"), and load
builds the engine again.
"""

from __future__ import annotations

from typing import Any

from kserve.model_repository import ModelRepository
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from predictor.errors import Forbidden, ModelNotFound

DISABLED = ("the model repository extension is off; start the server with --enable_repository_extension=true "
            "to load and unload models")


class GuardedRepositoryExtension(ModelRepositoryExtension):
    def __init__(self, registry: ModelRepository, enabled: bool):
        super().__init__(model_registry=registry)
        self.registry = registry
        self.enabled = enabled

    def _model(self, name: str) -> Any:
        from predictor.protocols.kserve.model import for_kserve

        if not self.enabled:
            raise for_kserve(Forbidden(DISABLED))
        model = self.registry.get_model(name)
        if model is None:
            raise for_kserve(ModelNotFound(f"model {name!r} does not exist", param="model_name"))
        return model

    async def load(self, model_name: str) -> dict[str, Any]:
        await self._model(model_name).reload()
        return {"name": model_name, "load": True}  # what kserve's gRPC servicer reads

    async def unload(self, model_name: str) -> dict[str, Any]:
        await self._model(model_name).unload()
        return {"name": model_name, "unload": True}

