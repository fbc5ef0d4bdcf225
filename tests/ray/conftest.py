"""One real local Ray for the whole tier: 2 CPUs, no dashboard, auth off (loopback only), short metric intervals.

Needs the `[ray]` extra (`pip install -e ".[test,ray]"`, one pip run). `make test-ray` sets RAY_TESTS_REQUIRED=1, so
there a missing Ray fails; a plain `pytest` in an environment without Ray skips this directory with that pointer.
Several Serve applications share the one Ray (starting Ray takes seconds each way). At the end no process of the
session may be left.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REQUIRED = os.environ.get("RAY_TESTS_REQUIRED") == "1"
HERE = Path(__file__).resolve().parent
# Set before Ray starts: its processes read them at start-up. Short intervals make autoscaling and the metrics
# export react in seconds instead of tens of seconds; they are for the test only.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",  # loopback-only test cluster; also leaves no ~/.ray/auth_token behind
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_metrics_report_interval_ms": "1000",
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
}


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("ray") is not None:
        return
    mine = [i for i in items if HERE in Path(str(i.fspath)).resolve().parents]
    if not mine:
        return
    if REQUIRED:
        raise pytest.UsageError('tests/ray need Ray: pip install -e ".[test,ray]" (in one pip run with the project)')
    skip = pytest.mark.skip(reason='Ray not installed: pip install -e ".[test,ray]", then `make test-ray`')
    for item in mine:
        item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (Ray's processes carry their session dir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            raw = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().split()[2]
        except OSError:
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        if text in cmdline and state != "Z":
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


@dataclass
class RayCluster:
    temp_dir: str
    http_port: int
    grpc_port: int
    metrics_port: int
    gcs_address: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def metrics(self) -> str:
        """Ray's Prometheus export of this node (Serve's and the mirrored engine metrics)."""
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    for key, value in RAY_ENV.items():
        os.environ[key] = value
    import ray
    from ray import serve

    temp_dir = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    metrics_port, http_port, grpc_port = free_port(), free_port(), free_port()
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False,
             _metrics_export_port=metrics_port)
    try:
        from predictor.ray_serve.grpc import SERVICER_FUNCTION

        serve.start(http_options={"host": "127.0.0.1", "port": http_port},
                    grpc_options={"port": grpc_port, "grpc_servicer_functions": [SERVICER_FUNCTION]})
        yield RayCluster(temp_dir, http_port, grpc_port, metrics_port, ray.get_runtime_context().gcs_address)
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
        deadline = time.monotonic() + 30
        while processes_mentioning(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = processes_mentioning(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes left after shutdown: {left}"


def deploy(name: str, route_prefix: str, args: dict, **overrides) -> None:
    """Deploy the builder's application under ``name``, with deployment options overridden as a serve config's
    ``deployments:`` entry would (the way a RayService tunes autoscaling)."""
    from ray import serve

    from predictor.ray_serve import build

    app = build(args)
    if overrides:
        deployment = app._bound_deployment
        app = deployment.options(**overrides).bind(*deployment.init_args)
    serve.run(app, name=name, route_prefix=route_prefix, blocking=False)


def replicas(app: str, state: str = "RUNNING") -> int:
    from ray import serve

    status = serve.status().applications.get(app)
    if status is None:
        return 0
    return sum(d.replica_states.get(state, 0) for d in status.deployments.values())


def wait_until(predicate, timeout: float, what: str, poll: float = 0.25) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(poll)
    return time.monotonic() - start


@pytest.fixture(scope="session")
def ocr_app(ray_cluster: RayCluster, tiny_v2_dir: str) -> str:
    """The main application at "/": one replica, a small engine (2 running + 1 queued) to reach its limits."""
    args = {"model_dir": tiny_v2_dir, "device": "cpu", "served_model_names": "ocr-alias", "max_batch_size": "2",
            "max_queue": "1", "default_max_tokens": "16", "min_replicas": "1", "max_replicas": "1",
            "num_cpus": "0.5"}
    deploy("ocr", "/", args)
    return ray_cluster.url
