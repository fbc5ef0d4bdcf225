"""Soak: v2 REST binary tensor extension bodies as tritonclient sends them, right and wrong (issue 24 item 2; the
fix belongs to the v2 REST body parser). Counts 5xx answers and answers that echo the request's bytes."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator

import httpx

from tests.e2e import catalogue as cat
from tests.e2e.server import Server

MARK = b"\x89ECHO-ME"  # bytes that must never come back in an answer


def _body(binary_data_size: int, data: bytes, header_length: str | None = None) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": binary_data_size}}]}).encode()
    headers = {"Content-Type": "application/octet-stream",
               "Inference-Header-Content-Length": header_length or str(len(header))}
    return header + data, headers


def _cases() -> list[tuple[str, bytes, dict[str, str]]]:
    png = cat.png()
    framed = struct.pack("<I", len(png)) + png
    mark = struct.pack("<I", len(MARK)) + MARK
    return [
        ("a PNG, length-prefixed (as tritonclient sends it)", *_body(len(framed), framed)),
        ("one byte that is not an image", *_body(len(mark), mark)),
        ("issue's body: prefix 1, byte 0x89", *_body(5, b"\x01\x00\x00\x00\x89")),
        ("binary_data_size 1000000000", *_body(1_000_000_000, mark)),
        ("binary_data_size past the body", *_body(len(mark) + 10, mark)),
        ("Inference-Header-Content-Length: abc", *_body(len(mark), mark, "abc")),
        ("Inference-Header-Content-Length: -5", *_body(len(mark), mark, "-5")),
        ("Inference-Header-Content-Length past the body", *_body(len(mark), mark, "100000")),
        ("length prefix past the element", *_body(8, struct.pack("<I", 999) + b"abcd")),
        ("binary_data_size 0", *_body(0, mark)),
    ]


def run(srv: Server) -> Iterator[tuple[str, str, bool]]:
    cases = _cases()
    five = []
    echoed = []
    for name, body, headers in cases:
        r = httpx.post(srv.url + cat.V2, content=body, headers=headers, timeout=120)
        if r.status_code >= 500:
            five.append(f"{name} -> {r.status_code}")
        if MARK in r.content or repr(MARK)[2:-1].encode() in r.content:
            echoed.append(name)
    yield ("binary extension: bad and good bodies answering 5xx", f"{len(five)}/{len(cases)} {five[:3]}", not five)
    yield ("binary extension: answers echoing request bytes", f"{len(echoed)}/{len(cases)} {echoed[:3]}",
           not echoed)
    good = cat.good_request(srv.url)
    yield ("binary extension: good request answered after them", str(good), good == 200)
