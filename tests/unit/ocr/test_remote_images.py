"""Remote image URLs: off by default; when on, only allow-listed hosts with public addresses, no redirects."""

from __future__ import annotations

import asyncio
import http.server
import threading

import pytest

from predictor.config import Settings
from predictor.errors import InvalidRequest
from predictor.ocr.remote_images import _public, fetch_image
from tests.conftest import png_bytes

PNG = png_bytes()


@pytest.fixture(scope="module")
def local_http():
    """A real HTTP server on loopback that would happily serve a PNG, and counts what it served."""
    served = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # http.server's naming
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(PNG)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], served
    server.shutdown()


def _on(*hosts: str) -> Settings:
    return Settings(allow_remote_images=True, remote_image_hosts=list(hosts))


def test_refused_when_disabled(local_http):
    port, served = local_http
    with pytest.raises(InvalidRequest, match="disabled"):
        asyncio.run(fetch_image(f"http://127.0.0.1:{port}/a.png", "image_url[0]", Settings()))
    assert served == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_refused_even_when_enabled_and_allow_listed(local_http, host):
    port, served = local_http
    with pytest.raises(InvalidRequest, match="non-public") as info:
        asyncio.run(fetch_image(f"http://{host}:{port}/a.png", "image_url[0]", _on(host)))
    assert info.value.param == "image_url[0]"
    assert served == []  # nothing was fetched


def test_host_not_on_the_allow_list(local_http):
    port, served = local_http
    with pytest.raises(InvalidRequest, match="not in the allowed"):
        asyncio.run(fetch_image(f"http://127.0.0.1:{port}/a.png", "f", _on("images.example.com")))
    with pytest.raises(InvalidRequest, match="only http"):
        asyncio.run(fetch_image("file:///etc/passwd", "f", _on("images.example.com")))
    assert served == []


@pytest.mark.parametrize(("address", "public"), [
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("::1", False), ("fe80::1", False), ("::ffff:127.0.0.1", False),
    ("0.0.0.0", False), ("224.0.0.1", False), ("100.64.0.1", False), ("8.8.8.8", True), ("2606:4700::1111", True),
])
def test_public_address_classification(address, public):
    assert _public(address) is public
