"""Fetching http(s) image URLs, off by default.

When enabled, only hosts on the allow-list are fetched, and only when every address they resolve to is public:
never loopback, private, link-local (cloud metadata at 169.254.169.254), multicast or reserved. Redirects are
not followed, so a redirect cannot lead to an internal address. Size and time are limited.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

from predictor.config import Settings
from predictor.errors import InvalidRequest, PayloadTooLarge


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified)


async def _resolve(host: str, port: int, field: str) -> str:
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidRequest(f"{field}: cannot resolve host {host!r}", param=field) from exc
    addresses = sorted({info[4][0] for info in infos})
    if not addresses or not all(_public(a) for a in addresses):
        raise InvalidRequest(f"{field}: host {host!r} resolves to a non-public address; refused", param=field)
    return addresses[0]


async def fetch_image(url: str, field: str, settings: Settings) -> bytes:
    if not settings.allow_remote_images:
        raise InvalidRequest(f"{field}: remote image URLs are disabled on this server; send the image as a "
                             "data URL (data:image/png;base64,...)", param=field)
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidRequest(f"{field}: only http(s) URLs are accepted", param=field)
    if host not in {h.lower() for h in settings.remote_image_hosts}:
        raise InvalidRequest(f"{field}: host {host!r} is not in the allowed remote image hosts", param=field)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = await _resolve(host, port, field)
    # Plain http connects to the address we checked (not a second DNS answer), with the real Host header;
    # https keeps the name so TLS verifies the certificate, which a rebinding attacker cannot present.
    transport = httpx.AsyncHTTPTransport(retries=0)
    limit = settings.remote_image_max_bytes
    try:
        async with httpx.AsyncClient(transport=transport, follow_redirects=False,
                                     timeout=settings.remote_image_timeout) as client:
            target = url if parts.scheme == "https" else url.replace(host, address, 1)
            async with client.stream("GET", target, headers={"Host": host}) as response:
                if response.status_code != 200:
                    raise InvalidRequest(f"{field}: fetching the image returned HTTP {response.status_code}",
                                         param=field)
                data = bytearray()
                async for piece in response.aiter_bytes():
                    data += piece
                    if len(data) > limit:
                        raise PayloadTooLarge(f"{field}: remote image exceeds {limit} bytes", param=field)
                return bytes(data)
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"{field}: cannot fetch the image ({type(exc).__name__})", param=field) from exc
