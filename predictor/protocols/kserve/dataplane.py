"""kserve's DataPlane with our rules for reading REST bodies, for both ways of serving (KServe server, Ray).

v2: a body that reaches us as bytes (no JSON Content-Type) is JSON unless it carries
``Inference-Header-Content-Length``, and then it is the binary tensor extension (``rest_body.py``).

v1, two changes:

kserve counts ``application/octet-stream`` among its JSON content types and parses every such body (and one sent
with no Content-Type) as JSON, so ``curl --data-binary @page.png -H 'Content-Type: application/octet-stream'``
got "Unrecognized request format: ..." instead of an OCR result. Here a body with one of those types that does not
start like JSON reaches the model as raw bytes, exactly as ``image/png`` or ``application/pdf`` bodies do (the model
then decodes it as an image or a PDF, or answers 400 naming ``body``). And a body that should be JSON but is not
gets a 400 that names ``body``, in our error shape, rather than kserve's bare parser message.

Server readiness and liveness ask the model (kserve's answer "ready" and "alive" whatever the model's state), so
gRPC ``ServerReady``/``ServerLive`` agree with the REST probes on every frontend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kserve.errors import InvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane

from predictor.errors import InvalidRequest
from predictor.protocols.kserve.rest_body import read_v2_body

if TYPE_CHECKING:
    from predictor.protocols.kserve.model import OcrModel

_RAW_WHEN_NOT_JSON = frozenset({"application/octet-stream", ""})


def _content_type(headers: dict[str, str] | None) -> str:
    return (headers or {}).get("content-type", "").split(";", 1)[0].strip().lower()


# The protocol extensions this server implements; the repository extension only when it is switched on.
BINARY_EXTENSION = "binary_tensor_data"
REPOSITORY_EXTENSION = "model_repository_extension"


class OcrDataPlane(DataPlane):
    def __init__(self, model_registry: ModelRepository, model: OcrModel, *, repository_extension: bool = False):
        super().__init__(model_registry=model_registry)
        self._model = model
        self.repository_extension = repository_extension

    async def ready(self) -> bool:
        return bool(await self._model.healthy())

    async def live(self) -> dict[str, str]:  # type: ignore[override] - kserve's is a staticmethod
        ok, reason = self._model.alive()
        return {"status": "alive"} if ok else {"status": "unhealthy", "reason": reason}

    def metadata(self) -> dict[str, Any]:
        """``/v2`` and gRPC ``ServerMetadata``: kserve lists the repository extension even when it answers 403."""
        extensions = [BINARY_EXTENSION] + ([REPOSITORY_EXTENSION] if self.repository_extension else [])
        return {**super().metadata(), "extensions": extensions}

    def decode(self, body: Any, headers: dict[str, str] | None, protocol_version: str = "v1",
               model_name: str | None = None) -> tuple[Any, dict[str, Any]]:
        if protocol_version.lower() == "v2" and isinstance(body, bytes | bytearray):
            return read_v2_body(bytes(body), headers, model_name or ""), {}
        if protocol_version.lower() != "v1" or not isinstance(body, bytes | bytearray):
            return super().decode(body, headers, protocol_version, model_name)
        if _content_type(headers) in _RAW_WHEN_NOT_JSON and body.lstrip()[:1] not in (b"{", b"["):
            return bytes(body), {}
        try:
            return super().decode(body, headers, protocol_version, model_name)
        except InvalidInput as exc:
            raise InvalidRequest(f"body is not valid JSON ({exc})", param="body") from exc
