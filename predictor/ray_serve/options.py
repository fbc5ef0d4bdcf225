"""Options of the Ray Serve variant: the server's own settings plus the few Ray adds, and the deployment options.

The same names work everywhere: ``--flag`` on ``python -m predictor.ray_serve``, ``PREDICTOR_FLAG`` in the
environment, and ``flag=value`` arguments of the builder (``serve run predictor.ray_serve:build flag=value`` or a
RayService's ``args:``). Builder arguments arrive as strings from ``serve run`` and typed from YAML; both go
through the same argparse converters as the command line, so they mean exactly what the flags mean.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import dataclass, fields, replace
from typing import Any

from predictor.config import ENV_PREFIX, Settings, build_parser, settings_from_args
from predictor.constants import DEVICE_PATTERN, DEVICES
from predictor.errors import ConfigError

APP_NAME = "deepseek-ocr"
DEPLOYMENT_NAME = "deepseek-ocr"
# Room above the engine's own capacity (running + queued) for health, model and metrics calls, and so that the
# request after the last admitted one reaches the engine and gets our OpenAI-shaped 429 instead of waiting in
# Serve's proxy queue (Serve refuses with plain text, or queues without bound by default).
ONGOING_HEADROOM = 8


@dataclass(frozen=True)
class RayOptions:
    """Per-deployment Ray options (builder arguments too). None = derived from the settings or the cluster."""

    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing_requests: float | None = None
    num_gpus: float | None = None
    num_cpus: float = 1.0


_RAY_HELP = {
    "min_replicas": "fewest replicas Ray Serve keeps (each holds one model and one engine)",
    "max_replicas": "most replicas Ray Serve scales to",
    "target_ongoing_requests": "autoscaling target of ongoing requests per replica (default: 80%% of "
                               "--max_batch_size)",
    "num_gpus": "GPUs per replica (default: 1 when the device is CUDA or the cluster has GPUs, else 0)",
    "num_cpus": "CPUs Ray reserves per replica",
}


def add_ray_arguments(parser: argparse.ArgumentParser, cli: bool = True) -> None:
    group = parser.add_argument_group("Ray Serve")
    if cli:
        group.add_argument("--ray_address", default=None,
                           help="Ray cluster to join (e.g. ray://head:10001 or auto); default: start a local Ray")
        group.add_argument("--app_name", default=APP_NAME, help="Serve application name")
        group.add_argument("--route_prefix", default="/",
                           help="HTTP prefix of the application (another prefix when sharing a cluster's Serve)")
    for f in fields(RayOptions):
        kind = int if f.type in ("int", int) else float
        group.add_argument(f"--{f.name}", type=kind, default=None, help=_RAY_HELP[f.name])


def _raising(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    def fail(message: str) -> None:
        raise ConfigError(message)

    parser.error = fail  # type: ignore[method-assign]
    return parser


def builder_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    parser.prog = "predictor.ray_serve:build"
    add_ray_arguments(parser, cli=False)
    return _raising(parser)


def _as_flag(key: str, value: Any) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    return f"--{key}={value}"


def parse_builder_args(args: dict[str, Any], check_host: bool = True) -> tuple[Settings, RayOptions]:
    """Builder arguments (``serve run`` strings or YAML values) -> validated settings and Ray options.

    ``check_host=False`` skips the checks that depend on the machine (a --model_dir on disk, a visible CUDA device):
    the builder may run on a Ray head that has neither, while each replica checks them again where it runs.
    """
    parser = builder_parser()
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ConfigError(f"unknown argument(s) {', '.join(unknown)}: use the option names of "
                          "`python -m predictor.ray_serve --help`, without the leading --")
    namespace = parser.parse_args([_as_flag(k, v) for k, v in args.items() if v is not None])
    return settings_for(namespace, check_host), ray_options_from(namespace)


def settings_for(namespace: argparse.Namespace, check_host: bool = True) -> Settings:
    if check_host:
        return settings_from_args(namespace)
    # "" and "auto" are given values (the environment is not consulted) that skip the host-dependent checks.
    settings = settings_from_args(argparse.Namespace(**{**vars(namespace), "model_dir": "", "device": "auto"}))
    real, defaults = {}, Settings()
    for name in ("model_dir", "device"):
        given = getattr(namespace, name, None)
        real[name] = given if given is not None else os.environ.get(ENV_PREFIX + name.upper(), getattr(defaults, name))
    if not re.fullmatch(DEVICE_PATTERN, real["device"]):
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)} or cuda:N, got {real['device']!r}")
    if real["model_dir"] and settings.model_id:
        raise ConfigError("give either --model_id or --model_dir, not both")
    return replace(settings, model_dir=real["model_dir"] or None, device=real["device"])


def _env_number(name: str, kind: type) -> Any:
    raw = os.environ.get(ENV_PREFIX + name.upper())
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from exc


def ray_options_from(namespace: argparse.Namespace) -> RayOptions:
    values: dict[str, Any] = {}
    for f in fields(RayOptions):
        kind = int if f.type in ("int", int) else float
        value = getattr(namespace, f.name, None)
        values[f.name] = value if value is not None else _env_number(f.name, kind)
    options = RayOptions(**{k: v for k, v in values.items() if v is not None})
    if options.min_replicas < 0 or options.max_replicas < 1 or options.min_replicas > options.max_replicas:
        raise ConfigError(f"need 0 <= --min_replicas <= --max_replicas and --max_replicas >= 1, got "
                          f"{options.min_replicas} and {options.max_replicas}")
    for name in ("target_ongoing_requests", "num_gpus"):
        value = getattr(options, name)
        if value is not None and (value < 0 or not math.isfinite(value) or (name[0] == "t" and value == 0)):
            raise ConfigError(f"--{name} must be {'positive' if name[0] == 't' else '0 or more'}, got {value}")
    if options.num_cpus < 0:
        raise ConfigError(f"--num_cpus must be 0 or more, got {options.num_cpus}")
    return options


def deployment_options(settings: Settings, options: RayOptions, cluster_gpus: float = 0.0) -> dict[str, Any]:
    """``Deployment.options(...)`` for these settings; a serve config's ``deployments:`` entry still overrides."""
    target = options.target_ongoing_requests or max(1.0, round(0.8 * settings.max_batch_size, 2))
    if options.num_gpus is not None:
        gpus = options.num_gpus
    else:
        gpus = 1.0 if settings.device.startswith("cuda") or (settings.device == "auto" and cluster_gpus > 0) else 0.0
    return {
        "autoscaling_config": {"min_replicas": options.min_replicas, "max_replicas": options.max_replicas,
                               "target_ongoing_requests": target},
        "max_ongoing_requests": settings.max_batch_size + settings.max_queue + ONGOING_HEADROOM,
        "ray_actor_options": {"num_cpus": options.num_cpus, "num_gpus": gpus},
        # a replica being replaced or scaled down finishes what it admitted, up to the request timeout
        "graceful_shutdown_timeout_s": settings.request_timeout,
        "health_check_period_s": 10.0,
        "health_check_timeout_s": 30.0,
    }
