"""The probe routes, in one place: what Kubernetes (or any orchestrator) calls to ask "alive?" and "ready?".

Liveness (``/`` and ``/v2/health/live``) is answered even while draining, so a shutting-down pod is not killed
early; readiness (server, each protocol's model-ready route, ``/health``) turns 503 while draining. Both kinds
answer without an API key: probes send none.
"""

from __future__ import annotations

import re

_LIVENESS = r"|v2/health/live"
_READINESS = r"health|v2/health/ready|v1/models/[^/:]+|v2/models/[^/]+(/versions/[^/]+)?/ready"
_LIVENESS_PATHS = re.compile(rf"^/({_LIVENESS})$")
_PROBE_PATHS = re.compile(rf"^/({_LIVENESS}|{_READINESS})$")
GRPC_PROBES = frozenset({"ServerLive", "ServerReady", "ModelReady"})


def is_liveness(path: str) -> bool:
    return _LIVENESS_PATHS.match(path) is not None


def is_probe(path: str) -> bool:
    """Liveness or readiness."""
    return _PROBE_PATHS.match(path) is not None
