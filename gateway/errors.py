"""The one error format of every surface (see `spec/api.md`, "Error envelope").

`APIError` subclasses are raised by services and views; `error_body` builds the
envelope for REST responses, SSE error events and WebSocket `error` frames
alike; `api_exception_handler` is DRF's EXCEPTION_HANDLER and turns DRF's own
exceptions into the same envelope while keeping their headers
(`WWW-Authenticate`, `Retry-After`).
"""

from __future__ import annotations

import logging
import math
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)

# The id of the request (or WebSocket generation) being handled, set by
# gateway.observability; every envelope carries it so a client can quote it.
request_id_var: ContextVar[str | None] = ContextVar("localai_request_id", default=None)


class APIError(Exception):
    """An error a client is meant to see, with its status, type and code."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"
    default_message: str = "Internal server error."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        param: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        self.param = param
        self.details = details
        self.headers = dict(headers or {})
        super().__init__(self.message)


class BadRequestError(APIError):
    """Malformed JSON, or a value the backend cannot honour."""

    status, type, code = 400, "invalid_request_error", "bad_request"
    default_message = "The request could not be understood."


class AuthenticationError(APIError):
    """Missing, unknown, revoked or expired API key."""

    status, type, code = 401, "authentication_error", "invalid_api_key"
    default_message = "Missing or invalid API key. Send it as 'Authorization: Bearer <key>'."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')


class PermissionDeniedError(APIError):
    """The key may not use this endpoint, or this model."""

    status, type, code = 403, "permission_error", "permission_denied"
    default_message = "This API key is not allowed to do that."


class NotFoundError(APIError):
    """No such object."""

    status, type, code = 404, "not_found_error", "not_found"
    default_message = "Not found."


class ModelNotFoundError(APIError):
    """The backend has no such model."""

    status, type, code = 404, "model_not_found_error", "model_not_found"
    default_message = "Model not found."

    def __init__(self, model: str, message: str | None = None, **kwargs: Any) -> None:
        self.model = model
        super().__init__(
            message
            or f"Model '{model}' not found. Pull it on the backend first (ollama pull {model}).",
            param="model",
            **kwargs,
        )


class MethodNotAllowedError(APIError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"
    default_message = "Method not allowed."


class RequestTooLargeError(APIError):
    """The request body is over MAX_REQUEST_BYTES."""

    status, type, code = 413, "invalid_request_error", "request_too_large"
    default_message = "Request body too large."


class NotAcceptableError(BadRequestError):
    """The `Accept` header asks for a type other than JSON."""

    status, code = 406, "not_acceptable"
    default_message = "Could not satisfy the request Accept header."


class UnsupportedMediaTypeError(BadRequestError):
    """The body is not `application/json`."""

    status, code = 415, "unsupported_media_type"
    default_message = "Unsupported media type in request."


class ValidationFailedError(APIError):
    """A field failed validation; `details` lists every failing field."""

    status, type, code = 422, "invalid_request_error", "validation_error"
    default_message = "Validation error."


class RateLimitedError(APIError):
    """Rate limit hit; retry after `Retry-After` seconds."""

    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"
    default_message = "Rate limit exceeded."

    def __init__(self, retry_after: float, message: str | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after_seconds(retry_after)
        super().__init__(
            message or f"Rate limit exceeded. Try again in {self.retry_after} s.", **kwargs
        )
        self.headers["Retry-After"] = str(self.retry_after)


class BackendError(APIError):
    """The backend answered with something unusable."""

    status, type, code = 502, "backend_error", "backend_error"
    default_message = "The inference backend answered with something unusable."


class BackendConnectionError(BackendError):
    """The connection to the backend broke (the backend went away mid-request)."""


class BackendUnavailableError(APIError):
    """The backend is not reachable."""

    status, type, code = 503, "backend_unavailable_error", "backend_unavailable"
    default_message = "The inference backend is not reachable."


class BackendBusyError(APIError):
    """The backend's queue is full; retry after `Retry-After` seconds."""

    status, type, code = 503, "backend_unavailable_error", "backend_busy"
    default_message = "The inference backend is busy (its queue is full). Retry shortly."

    def __init__(self, retry_after: float, message: str | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after_seconds(retry_after)
        super().__init__(message, **kwargs)
        self.headers["Retry-After"] = str(self.retry_after)


class ServerShuttingDownError(APIError):
    """This server process is draining before it exits (see `gateway.drain`)."""

    status, type, code = 503, "service_unavailable_error", "server_shutting_down"
    default_message = "This server is shutting down. Retry the request; another one will answer."

    def __init__(
        self, message: str | None = None, *, retry_after: float = 1, **kwargs: Any
    ) -> None:
        self.retry_after = retry_after_seconds(retry_after)
        super().__init__(message, **kwargs)
        self.headers["Retry-After"] = str(self.retry_after)


class BackendTimeoutError(APIError):
    """The backend did not answer in time (OLLAMA_READ_TIMEOUT)."""

    status, type, code = 504, "backend_timeout_error", "backend_timeout"
    default_message = "The inference backend did not answer in time."


class InsufficientResourcesError(APIError):
    """The backend has not enough memory for the model."""

    status, type, code = 507, "insufficient_resources_error", "insufficient_resources"
    default_message = "The backend does not have enough memory for this model."


def retry_after_seconds(seconds: float) -> int:
    """Whole seconds, at least 1, as `Retry-After` requires."""
    return max(1, math.ceil(seconds))


def timestamp() -> str:
    return datetime.now(UTC).isoformat()


def error_body(exc: APIError) -> dict[str, Any]:
    """The envelope `{"error": {...}}` for an `APIError`."""
    error: dict[str, Any] = {
        "message": exc.message,
        "type": exc.type,
        "code": exc.code,
        "param": exc.param,
        "timestamp": timestamp(),
    }
    if exc.details is not None:
        error["details"] = exc.details
    request_id = request_id_var.get()
    if request_id is not None:
        error["request_id"] = request_id
    return {"error": error}


def error_response(exc: APIError) -> JsonResponse:
    """A Django response carrying the envelope and the error's headers."""
    response = JsonResponse(error_body(exc), status=exc.status)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def _validation_details(detail: Any, path: str = "") -> list[dict[str, Any]]:
    """Flatten DRF's nested error dict into `[{"loc", "msg", "type"}]` rows."""
    rows: list[dict[str, Any]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            loc = str(key) if not path else f"{path}.{key}"
            if key == "non_field_errors":
                loc = path or "body"
            rows.extend(_validation_details(value, loc))
    elif isinstance(detail, list):
        if all(isinstance(item, drf_exceptions.ErrorDetail) for item in detail):
            for item in detail:
                rows.append({"loc": path or "body", "msg": str(item), "type": item.code})
        else:
            for index, item in enumerate(detail):
                rows.extend(_validation_details(item, f"{path}.{index}" if path else str(index)))
    else:
        rows.append(
            {"loc": path or "body", "msg": str(detail), "type": getattr(detail, "code", "invalid")}
        )
    return rows


def validation_error(detail: Any) -> ValidationFailedError:
    """A 422 naming each failing field, built from DRF's error detail."""
    details = _validation_details(detail)
    first = details[0] if details else None
    message = "Validation error"
    if first:
        message = f"Validation error: {first['loc']}: {first['msg']}"
        if len(details) > 1:
            message += f" (and {len(details) - 1} more)"
    return ValidationFailedError(message, details=details, param=first["loc"] if first else None)


def as_api_error(exc: BaseException) -> APIError:
    """Map any exception to the `APIError` a client should see."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, drf_exceptions.ValidationError):
        return validation_error(exc.detail)
    if isinstance(exc, drf_exceptions.ParseError):
        return BadRequestError(f"Malformed JSON body: {exc.detail}")
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        return AuthenticationError(str(exc.detail) if exc.detail else None)
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return PermissionDeniedError(str(exc.detail))
    if isinstance(exc, (drf_exceptions.NotFound, Http404)):
        return NotFoundError()
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return MethodNotAllowedError(str(exc.detail))
    if isinstance(exc, drf_exceptions.Throttled):
        return RateLimitedError(exc.wait or 1)
    if isinstance(exc, RequestDataTooBig):
        return RequestTooLargeError()
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return UnsupportedMediaTypeError(str(exc.detail))
    if isinstance(exc, drf_exceptions.NotAcceptable):
        return NotAcceptableError(str(exc.detail))
    if isinstance(exc, drf_exceptions.APIException):
        error = APIError(str(exc.detail))
        error.status = exc.status_code
        return error
    logger.exception("Unhandled error", exc_info=exc)
    return APIError()


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF EXCEPTION_HANDLER: every exception becomes the envelope."""
    error = as_api_error(exc)
    headers = dict(error.headers)
    # DRF sets these on its own exceptions (NotAuthenticated, Throttled).
    if isinstance(exc, drf_exceptions.APIException):
        if getattr(exc, "auth_header", None):
            headers.setdefault("WWW-Authenticate", exc.auth_header)
    return Response(error_body(error), status=error.status, headers=headers)
