"""The playground page at /ui, in-process: its files, its config, what `--ui false` and API keys do to it, and the
`ocr` object on the last streamed chunk that it draws the boxes from."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from predictor.app import build_app
from predictor.config import Settings
from predictor.constants import PAGE_SEPARATOR
from tests.builders import CHAT, chat_body

PAGE_FILES = ("/ui", "/ui/app.js", "/ui/request.js", "/ui/view.js", "/ui/app.css")


def _get(app, *paths: str, headers: dict | None = None) -> list[httpx.Response]:
    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            return [await client.get(p, headers=headers) for p in paths]

    return asyncio.run(run())


def _routes(app) -> set[tuple[str, tuple[str, ...]]]:
    """Every (path, methods) the app answers, routers included under their prefix."""
    found = set()
    for route in app.router.routes:
        router = getattr(route, "original_router", None)
        subs = [(router.prefix, r) for r in router.routes] if router is not None else [("", route)]
        found |= {(prefix + r.path, tuple(sorted(getattr(r, "methods", None) or ()))) for prefix, r in subs}
    return found


def test_page_files_are_served_small_and_self_contained(app_model):
    app, _ = app_model
    responses = _get(app, *PAGE_FILES)
    assert [r.status_code for r in responses] == [200] * 5
    assert [r.headers["content-type"].split(";")[0] for r in responses] == ["text/html", *["text/javascript"] * 3,
                                                                            "text/css"]
    total = sum(len(r.content) for r in responses)
    assert total < 100 * 1024, total
    html = responses[0].text
    assert all(f'src="ui/{name}.js"' in html for name in ("view", "request", "app")) and 'href="ui/app.css"' in html
    for r in responses:
        assert "default-src 'none'" in r.headers["content-security-policy"]
        # no third-party asset: nothing is fetched from another origin
        assert "http://" not in r.text and "https://" not in r.text, r.url


def test_config_reports_the_server_limits_and_options(app_model):
    app, model = app_model
    (response,) = _get(app, "/ui/config.json")
    config = response.json()
    settings = model.settings
    assert config["limits"]["max_body_bytes"] == settings.max_body_bytes == 2_000_000
    assert config["limits"]["max_pdf_pages"] == settings.max_pdf_pages
    assert config["limits"]["max_image_pixels"] == settings.max_image_pixels
    assert config["models"] == settings.all_model_names
    assert config["api_key_required"] is False
    assert config["ready"] is True and config["family"] == model.runtime.family.name
    assert config["modes"] == list(model.runtime.family.modes)
    assert config["defaults"]["mode"] == model.runtime.family.default_mode
    assert config["defaults"]["max_tokens"] == settings.default_max_tokens == 16
    assert {"task", "mode", "max_tokens", "render"} <= set(config["options"])
    assert "ocr" in config["tasks"] and config["defaults"]["task"] == "ocr"
    assert config["page_separator"] == PAGE_SEPARATOR


def test_ui_false_gives_404_and_changes_nothing_else(tiny_v2_dir):
    on = build_app(Settings(model_dir=tiny_v2_dir, device="cpu"))
    off = build_app(Settings(model_dir=tiny_v2_dir, device="cpu", ui=False))
    responses = _get(off, *PAGE_FILES, "/ui/config.json")
    assert [r.status_code for r in responses] == [404] * 6
    ui_routes = {route for route in _routes(on) if route[0] == "/ui" or route[0].startswith("/ui/")}
    assert len(ui_routes) == 6
    assert _routes(off) == _routes(on) - ui_routes
    assert [m.cls for m in off.user_middleware] == [m.cls for m in on.user_middleware]
    # the page's routes come after every API route: no API request is matched against them first
    paths = [getattr(r, "path", None) for r in on.router.routes]
    first_ui = paths.index("/ui")
    assert all(p is not None and p.startswith("/ui") for p in paths[first_ui:]), paths[first_ui:]


def test_with_api_keys_the_page_is_open_and_the_apis_are_not(tiny_v2_dir):
    key = "playground-key-1"
    app = build_app(Settings(model_dir=tiny_v2_dir, device="cpu", api_key=[key]))
    page, config, chat, models = _get(app, "/ui", "/ui/config.json", "/v1/chat/completions", "/v1/models")
    assert page.status_code == 200 and config.status_code == 200
    assert config.json()["api_key_required"] is True
    assert key not in config.text
    assert models.status_code == 401 and chat.status_code == 401
    (off_page,) = _get(build_app(Settings(model_dir=tiny_v2_dir, device="cpu", api_key=[key], ui=False)), "/ui")
    assert off_page.status_code == 401  # as before the page existed: the route is neither open nor served


def test_last_streamed_chunk_carries_the_ocr_object_of_the_plain_answer(app_model):
    app, _ = app_model
    body = chat_body(max_tokens=8, min_tokens=8)

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app",
                                     timeout=120) as client:
            plain = await client.post(CHAT, json=body)
            streamed = await client.post(CHAT, json={**body, "stream": True})
            return plain, streamed

    plain, streamed = asyncio.run(run())
    assert plain.status_code == 200 and streamed.status_code == 200, (plain.text, streamed.text)
    frames = [json.loads(line[6:]) for line in streamed.text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    finals = [f for f in frames if f["choices"] and f["choices"][0].get("finish_reason")]
    assert len(finals) == 1
    assert all("ocr" not in f for f in frames if f is not finals[0])
    assert finals[0]["ocr"] == plain.json()["ocr"]
    text = "".join(f["choices"][0]["delta"].get("content") or "" for f in frames if f["choices"])
    assert text == plain.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("path", ["/ui/../v1/models", "/ui/%2e%2e/v1/models"])
def test_open_ui_prefix_does_not_open_other_routes(tiny_v2_dir, path):
    app = build_app(Settings(model_dir=tiny_v2_dir, device="cpu", api_key=["playground-key-1"]))
    (response,) = _get(app, path)
    assert response.status_code in (401, 404)
