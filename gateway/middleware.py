"""Middleware that keeps Django's own errors inside the error envelope.

DRF's exception handler covers the API views; this covers the rest: unknown
routes (Django's 404 page), exceptions outside DRF (500), bodies over the size
limit (413). The admin keeps its own HTML pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views import defaults

from gateway.errors import (
    APIError,
    BadRequestError,
    MethodNotAllowedError,
    NotFoundError,
    as_api_error,
    error_response,
)

# Paths whose HTML error pages are meant for people, not API clients.
HTML_PREFIXES = ("/admin/", "/static/")
# Ollama's own routes answer errors as Ollama does: {"error": "<message>"}.
OLLAMA_PREFIX = "/ollama/api/"

_BY_STATUS: dict[int, type[APIError]] = {
    404: NotFoundError,
    405: MethodNotAllowedError,
    500: APIError,
}


def _wants_envelope(request: HttpRequest, response: HttpResponseBase) -> bool:
    if response.streaming or response.status_code not in _BY_STATUS:
        return False
    if request.path.startswith(HTML_PREFIXES):
        return False
    return not response.get("Content-Type", "").startswith("application/json")


def _convert(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    if not _wants_envelope(request, response):
        return response
    error = _BY_STATUS[response.status_code]()
    if response.status_code == 404:
        error.message = f"No route for {request.method} {request.path}."
    converted = error_response(error)
    if response.has_header("Allow"):
        converted["Allow"] = response["Allow"]
    return converted


class ErrorEnvelopeMiddleware:
    """Turns non-API error pages and stray exceptions into the envelope."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        return _convert(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = await self.get_response(request)  # type: ignore[misc]
        return _convert(request, response)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        if request.path.startswith(HTML_PREFIXES) and not isinstance(exception, RequestDataTooBig):
            return None
        return error_response(as_api_error(exception))


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponseBase:
    """handler400: a request Django refuses before any view (a Host not in ALLOWED_HOSTS...).

    Django answers these with its HTML page; API clients get their error shape.
    """
    if request.path.startswith(HTML_PREFIXES):
        return defaults.bad_request(request, exception)
    if isinstance(exception, DisallowedHost):
        error: APIError = BadRequestError(
            "This server does not answer to the host named in the Host header (ALLOWED_HOSTS).",
            code="disallowed_host",
        )
    elif isinstance(exception, RequestDataTooBig):
        error = as_api_error(exception)
    else:
        error = BadRequestError()
    if request.path.startswith(OLLAMA_PREFIX):
        return JsonResponse({"error": error.message}, status=error.status)
    return error_response(error)
