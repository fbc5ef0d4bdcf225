"""``python -m predictor.ray_serve``: the flags of ``python -m predictor`` plus Ray's; start or join Ray, deploy,
serve HTTP on ``--http_port`` until SIGTERM/SIGINT, then stop cleanly (a local Ray leaves no process behind).

Exit status: 0 after a signal, 2 for bad options (before Ray starts), 1 when the deployment fails (the reason,
as Serve reports it, is printed).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import fields
from typing import Any

from predictor.config import set_serving_environment

set_serving_environment()  # the same preamble as python -m predictor (the replicas set it too: deployment.py)

log = logging.getLogger("predictor.ray_serve")


def parse(argv: list[str] | None) -> tuple[Any, Any, argparse.Namespace]:
    from kserve import model_server  # its parser carries kserve's flags (--http_port, ...), as for the KServe server

    from predictor.config import build_parser, settings_from_args
    from predictor.ray_serve.options import add_ray_arguments, ray_options_from

    parser = build_parser(parents=[model_server.parser])
    parser.prog = "python -m predictor.ray_serve"
    parser.description = "DeepSeek-OCR on Ray Serve. Every --flag can also be set as PREDICTOR_FLAG."
    add_ray_arguments(parser)
    args = parser.parse_args(argv)
    return settings_from_args(args), ray_options_from(args), args


def builder_args(settings: Any, options: Any) -> dict[str, Any]:
    """What the builder (and so every replica) receives: all settings, explicit, so a replica never depends on the
    environment of the node it lands on."""
    from predictor.config import KSERVE_FLAGS  # the process's own server flags: Serve owns the ports

    args = {f.name: getattr(settings, f.name) for f in fields(settings) if f.name not in KSERVE_FLAGS}
    args.update({f.name: getattr(options, f.name) for f in fields(options)})
    return {k: v for k, v in args.items() if v is not None and v != []}


def _deploy_failure(app_name: str) -> str:
    from ray import serve

    try:
        app = serve.status().applications.get(app_name)
    except Exception as exc:  # noqa: BLE001 - the status is only there to explain the failure
        return f"(serve status unavailable: {exc})"
    if app is None:
        return "(the application is not in serve status)"
    reasons = [app.message] + [d.message for d in app.deployments.values() if d.message]
    return f"{app.status}: " + "\n".join(r for r in reasons if r)


def main(argv: list[str] | None = None) -> int:
    from predictor.errors import ConfigError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    try:
        settings, options, args = parse(argv)
    except ConfigError as exc:
        print(f"python -m predictor.ray_serve: error: {exc} (see --help)", file=sys.stderr)
        return 2
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a model server does not phone home
    import ray
    from ray import serve

    from predictor.ray_serve import build
    from predictor.ray_serve.grpc import SERVICER_FUNCTION

    local = args.ray_address is None
    if local:
        ray.init(include_dashboard=False)
    else:
        ray.init(address=args.ray_address)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        grpc = {"port": settings.grpc_port, "grpc_servicer_functions": [SERVICER_FUNCTION]}
        serve.start(http_options={"host": "0.0.0.0", "port": settings.http_port},
                    grpc_options=grpc if settings.enable_grpc else None)
        try:
            serve.run(build(builder_args(settings, options)), name=args.app_name, route_prefix=args.route_prefix,
                      blocking=False)
        except Exception as exc:  # noqa: BLE001 - Serve raises RuntimeError, RayServeException, ...: all fatal here
            print(f"python -m predictor.ray_serve: deployment failed: {exc}\n{_deploy_failure(args.app_name)}",
                  file=sys.stderr)
            return 1
        log.info("serving %s on http://0.0.0.0:%d%s%s (ready in %.1f s)", settings.all_model_names,
                 settings.http_port, args.route_prefix.rstrip("/"),
                 f" and gRPC on :{settings.grpc_port}" if settings.enable_grpc else "", time.monotonic() - started)
        while not stop.wait(1.0):
            pass
        log.info("signal received: stopping")
    finally:
        _stop(local, args.app_name)
    return 0


def _stop(local: bool, app_name: str) -> None:
    import ray
    from ray import serve

    try:
        if local:
            serve.shutdown()
        else:
            serve.delete(app_name)  # leave the rest of a shared cluster alone
    except Exception:  # noqa: BLE001 - still shut Ray down below
        log.exception("stopping Serve failed")
    ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
