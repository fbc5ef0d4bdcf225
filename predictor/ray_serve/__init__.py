"""The predictor as a Ray Serve application (``pip install -e ".[ray]"``, in the same pip run as the project).

- ``predictor.ray_serve:build``: the application builder, for ``serve run predictor.ray_serve:build model_dir=DIR``
  and a RayService's ``serveConfigV2`` (``import_path`` + ``args:`` with the command line's option names).
- ``python -m predictor.ray_serve``: starts or joins Ray, deploys, serves HTTP, stops cleanly on SIGTERM/SIGINT.

Ray is imported on first use of ``build`` (PEP 562), so ``predictor.ray_serve.options`` stays importable without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build"]


def __getattr__(name: str) -> Any:
    if name in ("build", "OcrDeployment"):
        from predictor.ray_serve import deployment

        return getattr(deployment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
