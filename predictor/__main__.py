"""``python -m predictor``: kserve's flags plus ours -> settings -> KServe ModelServer with our routes."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from predictor.config import set_serving_environment

set_serving_environment()  # before anything imports torch

log = logging.getLogger("predictor")

if TYPE_CHECKING:
    from predictor.config import Settings


def main(argv: list[str] | None = None) -> int:
    from kserve import model_server  # parses sys.argv at import time; our parser reads the same argv

    from predictor.config import build_parser, settings_from_args
    from predictor.errors import ConfigError

    parser = build_parser(parents=[model_server.parser])
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"python -m predictor: error: {exc} (see --help)", file=sys.stderr)
        return 2
    serve(settings, args)
    return 0


def serve(settings: Settings, args: argparse.Namespace) -> None:
    import kserve
    from kserve import model_server

    from predictor.app import build_app, install_server
    from predictor.protocols.kserve.model import OcrModel

    model = OcrModel(settings)
    # kserve's REST server serves its module-level app and adds its own routes to it when it starts.
    build_app(settings, model, app=model_server.app, kserve_routes=False, docs=args.enable_docs_url)
    # kserve hands its module-level args to the gRPC server: raise its 8 MiB message cap to our body limit.
    for key in ("grpc_max_send_message_length", "grpc_max_receive_message_length"):
        setattr(model_server.args, key, max(settings.max_body_bytes, getattr(args, key)))
    # On SIGTERM our drain (predictor/server/drain.py) lets in-flight requests finish within --shutdown_grace before
    # uvicorn's shutdown begins; uvicorn and the gRPC server then only close, hence their short grace.
    server = kserve.ModelServer(http_port=settings.http_port, grpc_port=settings.grpc_port,
                                enable_grpc=settings.enable_grpc, workers=1, grace_period=2)
    _log_like_kserve()
    install_server(server, model)  # registers the model under every served name
    log.info("serving %s as %s (model source: %s)", "DeepSeek-OCR", settings.all_model_names, settings.model_source)
    server.start([model])


def _log_like_kserve() -> None:
    """Our INFO lines (hardware choice, what is served, KV cache size, experts plan) in kserve's format and level.

    kserve's logging config (applied when the ModelServer is built) only names its own and uvicorn's loggers, so
    ours would fall through to Python's last-resort handler, which drops everything below WARNING. A config file
    that configures ``predictor`` itself (``--log_config_file``) wins: then nothing is added.
    """
    from kserve.logging import KSERVE_LOGGER_DATE_FORMAT, KSERVE_LOGGER_FORMAT, logger

    if log.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(KSERVE_LOGGER_FORMAT, KSERVE_LOGGER_DATE_FORMAT))
    log.addHandler(handler)
    log.setLevel(logger.getEffectiveLevel())
    log.propagate = False


if __name__ == "__main__":
    sys.exit(main())
