"""The one KServe plane: the repository holding the model under every served name, the guarded repository
extension and the dataplane whose readiness and liveness ask the model.

Three frontends serve KServe's protocols and all take their plane from ``build_plane``: the in-process REST routes
(``predictor.app.build_app``, also used by Ray's HTTP ingress), kserve's ``ModelServer`` (REST and gRPC,
``predictor.app.install_server``) and Ray Serve's gRPC proxy (``predictor.ray_serve.grpc``). Before this, each built
its own, and Ray's gRPC got kserve's plain DataPlane, whose ``ServerReady`` answers true while weights load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kserve.model_repository import ModelRepository

from predictor.protocols.kserve.dataplane import OcrDataPlane
from predictor.protocols.kserve.repository import GuardedRepositoryExtension

if TYPE_CHECKING:
    from predictor.protocols.kserve.model import OcrModel


@dataclass(frozen=True)
class KServePlane:
    repository: ModelRepository
    extension: GuardedRepositoryExtension
    dataplane: OcrDataPlane


def build_plane(model: OcrModel, repository: ModelRepository | None = None) -> KServePlane:
    """Register ``model`` under all its served names in ``repository`` (a new one when not given; kserve's
    ``ModelServer`` passes its own) and build the extension and dataplane over it."""
    repository = ModelRepository() if repository is None else repository
    for name in model.settings.all_model_names:
        repository.update(model, name)
    extension = GuardedRepositoryExtension(repository, model.settings.enable_repository_extension)
    dataplane = OcrDataPlane(repository, model, repository_extension=model.settings.enable_repository_extension)
    return KServePlane(repository, extension, dataplane)
