"""``GET /ui`` (the page), its scripts and stylesheet under ``/ui/`` and ``/ui/config.json``.

The files are read once, when the app is built, and served from memory with a strict Content-Security-Policy:
the page may load nothing but itself and may talk to nothing but this server.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from predictor.constants import DEFAULT_TASK, PAGE_SEPARATOR, PDF_DPI, TASKS
from predictor.ocr.options import OPTION_NAMES, OcrOptions
from predictor.server.auth import KeyChecker

PREFIX = "/ui"
_JS = "text/javascript; charset=utf-8"
_FILES = {"": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", _JS),
          "/request.js": ("request.js", _JS), "/view.js": ("view.js", _JS),
          "/app.css": ("app.css", "text/css; charset=utf-8")}
# blob: and data: images: the picked file is shown from a blob URL, server renders of PDF pages and figure crops
# arrive as base64.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer"}
LIMITS = ("max_body_bytes", "max_image_pixels", "max_pdf_pages", "max_page_pixels", "max_request_pixels",
          "max_images_per_request", "max_new_tokens", "default_max_tokens")


def static_files() -> dict[str, tuple[bytes, str]]:
    """URL suffix under ``/ui`` -> (content, media type)."""
    folder = resources.files("predictor.ui") / "static"
    return {suffix: ((folder / name).read_bytes(), media) for suffix, (name, media) in _FILES.items()}


def _defaults() -> dict[str, Any]:
    """Each option's default as the server applies it when a request does not say (plain values only)."""
    values = {f.name: f.default for f in dataclasses.fields(OcrOptions) if f.default is not dataclasses.MISSING}
    return {k: v for k, v in values.items() if v is None or isinstance(v, bool | int | float | str)}


def page_config(model: Any, key_required: bool) -> dict[str, Any]:
    """What the page needs to know before a request: names, limits, options, the loaded family's modes."""
    settings = model.settings
    runtime = model.runtime
    family = runtime.family if runtime is not None else None
    defaults = {**_defaults(), "task": DEFAULT_TASK, "max_tokens": settings.default_max_tokens}
    if "dpi" in OPTION_NAMES and defaults.get("dpi") is None:
        defaults["dpi"] = PDF_DPI  # what the server renders at when a request does not say
    if family is not None:
        defaults["mode"] = settings.default_mode or family.default_mode
        defaults["max_crops"] = family.default_max_crops
    return {
        "models": settings.all_model_names,
        "api_key_required": key_required,
        "ready": family is not None,
        "family": family.name if family is not None else None,
        "modes": list(family.modes) if family is not None else [],
        "max_crops_limit": family.max_crops_limit if family is not None else None,
        "tasks": list(TASKS),
        "options": sorted(OPTION_NAMES),
        "defaults": defaults,
        "limits": {name: getattr(settings, name) for name in LIMITS},
        "chat_path": "v1/chat/completions",
        "page_separator": PAGE_SEPARATOR,
    }


def register(app: FastAPI, model: Any) -> None:
    files = static_files()
    key_required = KeyChecker.from_settings(model.settings).enabled

    def serve(suffix: str) -> Any:
        content, media = files[suffix]

        async def handler() -> Response:
            return Response(content, media_type=media, headers=_HEADERS)

        return handler

    for suffix in files:
        app.add_api_route(PREFIX + suffix, serve(suffix), methods=["GET"], include_in_schema=False)

    async def config() -> JSONResponse:
        return JSONResponse(page_config(model, key_required), headers={"Cache-Control": "no-store"})

    app.add_api_route(PREFIX + "/config.json", config, methods=["GET"], include_in_schema=False)
