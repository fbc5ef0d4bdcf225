"""Start ``python -m predictor`` as a real process on free loopback ports, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    http_port: int
    grpc_port: int
    log_path: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-5000:]

    def _wait_for(self, path: str, what: str, timeout: float, poll: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(poll)
        raise TimeoutError(f"server not {what} after {timeout}s:\n{self.log()}")

    def wait_ready(self, model: str = "deepseek-ocr", timeout: float = 120.0) -> None:
        self._wait_for(f"/v1/models/{model}", "ready", timeout, 0.2)

    def wait_live(self, timeout: float = 60.0) -> None:
        self._wait_for("/v2/health/live", "live", timeout, 0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(model_dir: str, log_path: str, *extra: str, env: dict[str, str] | None = None) -> Server:
    http_port, grpc_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "predictor", "--model_dir", model_dir, "--device", "cpu",
           "--http_port", str(http_port), "--grpc_port", str(grpc_port), *extra]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    return Server(process, http_port, grpc_port, log_path)


@contextmanager
def served(model_dir: str, log_path: str, *extra: str, env: dict[str, str] | None = None,
           wait: str | None = "ready") -> Iterator[Server]:
    """A started server, stopped however the block ends. ``wait``: "ready" (for requests), "live" (still loading
    its weights) or None (a server expected to fail at start-up)."""
    srv = start_server(model_dir, log_path, *extra, env=env)
    try:
        if wait == "ready":
            srv.wait_ready()
        elif wait == "live":
            srv.wait_live()
        yield srv
    finally:
        srv.stop()
