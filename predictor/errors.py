"""Error types of the predictor. Each carries its HTTP meaning; ``predictor.server.http_errors`` maps them to
responses in one place for every protocol (KServe v1/v2 and OpenAI)."""

from __future__ import annotations


class PredictorError(Exception):
    """Base class: a request failed. ``message`` is safe to show to the client."""

    status: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after


class InvalidRequest(PredictorError):
    """The client sent something we cannot serve (bad field, bad image, bad option). ``param`` names the field."""

    status = 400
    error_type = "invalid_request_error"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "payload_too_large"


class Unauthorized(PredictorError):
    """No API key, or not one of the server's keys."""

    status = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(PredictorError):
    """The route exists but this server does not allow it (e.g. the repository extension is off)."""

    status = 403
    error_type = "invalid_request_error"
    code = "forbidden"


class RouteNotSupported(PredictorError):
    """A route of the protocol that this server does not implement (e.g. KServe v1 ``:explain``)."""

    status = 404
    error_type = "invalid_request_error"
    code = "unsupported_route"


class ModelNotFound(PredictorError):
    status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class Overloaded(PredictorError):
    """Queue full: retry later."""

    status = 429
    error_type = "rate_limit_error"
    code = "server_overloaded"


class NotReady(PredictorError):
    status = 503
    error_type = "server_error"
    code = "model_not_ready"


class OutOfMemory(PredictorError):
    status = 503
    error_type = "server_error"
    code = "out_of_memory"


class RequestTimeout(PredictorError):
    status = 504
    error_type = "timeout"
    code = "request_timeout"


class Cancelled(PredictorError):
    """The client went away; nobody reads this error."""

    status = 499
    error_type = "cancelled"


class EngineFault(PredictorError):
    """An unexpected failure inside the model for this request only; the message never carries internals."""

    status = 500
    error_type = "server_error"
    code = "internal_error"


class LoadError(RuntimeError):
    """The checkpoint cannot be loaded (unsupported family, missing tensor, bad config)."""


class ConfigError(ValueError):
    """A bad command-line flag or environment variable, found before any weights are loaded."""
