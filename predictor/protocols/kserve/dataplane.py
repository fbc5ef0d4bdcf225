"""kserve's DataPlane with two changes to how a KServe v1 REST body is read.

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

if TYPE_CHECKING:
    from predictor.protocols.kserve.model import OcrModel

_RAW_WHEN_NOT_JSON = frozenset({"application/octet-stream", ""})


def _content_type(headers: dict[str, str] | None) -> str:
    return (headers or {}).get("content-type", "").split(";", 1)[0].strip().lower()


class OcrDataPlane(DataPlane):
    def __init__(self, model_registry: ModelRepository, model: OcrModel):
        super().__init__(model_registry=model_registry)
        self._model = model

    async def ready(self) -> bool:
        return bool(await self._model.healthy())

    async def live(self) -> dict[str, str]:  # type: ignore[override] - kserve's is a staticmethod
        ok, reason = self._model.alive()
        return {"status": "alive"} if ok else {"status": "unhealthy", "reason": reason}

    def decode(self, body: Any, headers: dict[str, str] | None, protocol_version: str = "v1",
               model_name: str | None = None) -> tuple[Any, dict[str, Any]]:
        if protocol_version.lower() != "v1" or not isinstance(body, bytes | bytearray):
            return super().decode(body, headers, protocol_version, model_name)
        if _content_type(headers) in _RAW_WHEN_NOT_JSON and body.lstrip()[:1] not in (b"{", b"["):
            return bytes(body), {}
        try:
            return super().decode(body, headers, protocol_version, model_name)
        except InvalidInput as exc:
            raise InvalidRequest(f"body is not valid JSON ({exc})", param="body") from exc
