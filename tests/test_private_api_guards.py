"""Guards for the speed-ups (and the few other spots) that rely on a library's
private API. Each one is kept only with its library pinned in
requirements.txt and a test here that fails when the library changes under
it: the private name still exists with the shape used, and the speed-up
still takes effect. Their measured gains: BENCHMARKS.md, "Speed-ups on
private APIs" (`make bench`, section `speedups`).

Upgrading one of these libraries: run this file first; when a guard fails,
either adapt the speed-up or drop it (the stock public behaviour is what
bench/undone.py measures against).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import threading
from importlib import metadata
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import httpx
import ollama
import pytest
from django.contrib.messages import constants as message_levels
from django.contrib.messages.storage.base import BaseStorage
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory
from django.utils.deprecation import MiddlewareMixin
from httpx_aiohttp import transport as httpx_aiohttp_transport
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from gateway.backends.ollama import _ResponseStream, _Transport
from gateway.streaming import ByteStreamResponse
from gateway.viewsets import ViewSet
from tests.fake_ollama import FakeOllama

ROOT = Path(__file__).resolve().parent.parent

# The libraries whose private API the gateway uses, and where.
GUARDED = {
    "Django": "gateway/streaming.py, localai_site/handlers.py, localai_site/middleware.py",
    "djangorestframework": "keys/authentication.py, gateway/metering.py (Request._request)",
    "httpx-aiohttp": "gateway/backends/ollama.py (_Transport, _ResponseStream)",
    "ollama": "gateway/backends/ollama.py (AsyncClient._request_raw)",
    "whitenoise": "localai_site/middleware.py (AsyncWhiteNoiseMiddleware)",
}


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if match:
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


@pytest.mark.parametrize("package", sorted(GUARDED))
def test_it_runs_on_the_pinned_version_of_each_guarded_library(package: str) -> None:
    pins = _pins()
    assert package.lower() in pins, f"{package} must stay pinned (==) in requirements.txt"
    assert metadata.version(package) == pins[package.lower()]


# --- Django: ByteStreamResponse (gateway/streaming.py) ------------------------------


async def _chunks(*parts: bytes) -> Any:
    for part in parts:
        yield part


def test_django_streaming_response_keeps_the_private_hooks_bytestreamresponse_uses() -> None:
    # ByteStreamResponse hands out `_iterator` and stores through `_set_streaming_content`.
    parameters = list(inspect.signature(StreamingHttpResponse._set_streaming_content).parameters)
    assert parameters == ["self", "value"]
    chunks = _chunks(b"a")
    response = StreamingHttpResponse()
    response._set_streaming_content(chunks)
    assert response._iterator is chunks
    assert response.is_async is True


def test_bytestreamresponse_relays_the_iterator_itself_without_wrapping() -> None:
    chunks = _chunks(b"data: 1\n\n", b"data: 2\n\n")
    response = ByteStreamResponse(chunks, content_type="text/event-stream")
    assert response.streaming_content is chunks

    # The usage middleware's wrap (keys/middleware.py) is what the server iterates.
    async def metered(content: Any) -> Any:
        async for chunk in content:
            yield chunk

    wrapped = metered(response.streaming_content)
    response.streaming_content = wrapped
    assert response.__aiter__() is wrapped

    async def body() -> list[bytes]:
        return [part async for part in response]

    assert asyncio.run(body()) == [b"data: 1\n\n", b"data: 2\n\n"]


def test_bytestreamresponse_still_streams_a_sync_iterator_the_stock_way() -> None:
    response = ByteStreamResponse(iter([b"a", "b"]), content_type="text/plain")
    assert list(response) == [b"a", b"b"]


def test_djangos_asgi_handler_iterates_the_response_itself() -> None:
    # ByteStreamResponse's `__aiter__` saves steps only if the server loop
    # iterates the response object (not `streaming_content`).
    source = inspect.getsource(ASGIHandler.send_response)
    assert "aiter(response)" in source


# --- httpx-aiohttp: _Transport / _ResponseStream (gateway/backends/ollama.py) -------


def test_httpx_aiohttp_keeps_the_stream_class_and_error_mapping_the_transport_uses() -> None:
    stock = httpx_aiohttp_transport.AiohttpResponseStream
    parameters = list(inspect.signature(stock.__init__).parameters)
    assert parameters[:2] == ["self", "aiohttp_response"]
    marker = object()
    assert stock(marker)._aiohttp_response is marker  # type: ignore[arg-type]

    mapped = httpx_aiohttp_transport.map_aiohttp_exceptions
    with pytest.raises(httpx.TransportError) as raised, mapped():
        raise aiohttp.ServerDisconnectedError()
    assert isinstance(raised.value.__cause__, aiohttp.ClientError)


def test_the_transport_swaps_in_the_lighter_stream_and_reads_the_whole_body(
    fake_ollama_server: FakeOllama,
) -> None:
    fake_ollama_server.reset()

    async def fetch() -> tuple[Any, bytes]:
        transport = _Transport(client=aiohttp.ClientSession())
        request = httpx.Request("GET", f"{fake_ollama_server.url}/api/tags")
        response = await transport.handle_async_request(request)
        stream = response.stream
        body = await response.aread()
        await response.aclose()
        await transport.aclose()
        return stream, body

    stream, body = asyncio.run(fetch())
    assert isinstance(stream, _ResponseStream)
    assert httpx.Response(200, content=body).json()["models"]


# --- ollama: AsyncClient._request_raw (describe_model, version) ---------------------


def test_ollama_keeps_request_raw_returning_the_raw_response(
    fake_ollama_server: FakeOllama,
) -> None:
    fake_ollama_server.reset()
    assert inspect.iscoroutinefunction(ollama.AsyncClient._request_raw)

    async def call() -> tuple[httpx.Response, ollama.ResponseError | None]:
        client = ollama.AsyncClient(host=fake_ollama_server.url)
        response = await client._request_raw("GET", "/api/version")
        error = None
        try:
            await client._request_raw("POST", "/api/show", json={"model": "no-such:model"})
        except ollama.ResponseError as exc:
            error = exc
        await client.close()
        return response, error

    response, error = asyncio.run(call())
    assert isinstance(response, httpx.Response)
    assert "version" in response.json()
    # The backend's error translation expects the client's own ResponseError.
    assert error is not None
    assert error.status_code == 404


# --- DRF: Request._request (keys/authentication.py, gateway/metering.py) ------------


def test_drf_request_keeps_the_django_request_as_request_underscore_request() -> None:
    django_request = RequestFactory().get("/")
    request = Request(django_request)
    assert request._request is django_request
    django_request.caller = "x"  # what the usage middleware later reads
    assert request.caller == "x"


# --- adrf: view_is_async (gateway/viewsets.py, public: a constant) ------------------


def _all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


ACTIONS = {"list", "create", "retrieve", "update", "partial_update", "destroy"}


def test_every_gateway_viewset_action_is_a_coroutine_so_view_is_async_is_true() -> None:
    import localai_site.urls  # noqa: F401 - every viewset module loaded

    viewsets = _all_subclasses(ViewSet)
    assert viewsets
    for viewset in viewsets:
        for name, function in inspect.getmembers(viewset, inspect.isfunction):
            if name in ACTIONS or hasattr(function, "mapping"):
                assert inspect.iscoroutinefunction(function), f"{viewset.__name__}.{name}"


def test_adrf_dispatches_a_gateway_viewset_without_listing_its_members() -> None:
    class Probe(ViewSet):
        authentication_classes: list[Any] = []
        permission_classes: list[Any] = []

        async def list(self, request: Request) -> Response:
            return Response({"ok": True})

    with mock.patch("adrf.viewsets.getmembers", side_effect=AssertionError("per request")):
        view = Probe.as_view({"get": "list"})
        assert inspect.iscoroutinefunction(view)
        response = asyncio.run(view(APIRequestFactory().get("/")))
    assert response.status_code == 200


# --- Django: GatewayASGIHandler (localai_site/handlers.py) --------------------------


def test_djangos_asgi_handler_keeps_handle_and_wraps_it_in_a_thread_sensitive_context() -> None:
    # GatewayASGIHandler calls `handle` directly for API requests, skipping
    # `__call__`'s ThreadSensitiveContext (a thread per request).
    assert inspect.iscoroutinefunction(ASGIHandler.handle)
    assert list(inspect.signature(ASGIHandler.handle).parameters) == [
        "self",
        "scope",
        "receive",
        "send",
    ]
    source = inspect.getsource(ASGIHandler.__call__)
    assert "ThreadSensitiveContext()" in source
    assert "self.handle(scope, receive, send)" in source


async def _get(app: Any, path: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages: list[dict[str, Any]] = []
    bodies = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if bodies:
            return bodies.pop()
        await asyncio.Event().wait()  # no disconnect: Django stops listening when done
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return messages[0]["status"]


@pytest.mark.django_db
def test_api_requests_share_one_sync_thread_and_other_requests_get_their_own() -> None:
    from django.core.signals import request_started

    from localai_site.handlers import GatewayASGIHandler

    threads: list[str] = []

    def seen(**kwargs: Any) -> None:
        threads.append(threading.current_thread().name)

    async def requests() -> None:
        handler = GatewayASGIHandler()
        for path in ("/healthz", "/healthz", "/no-such-page", "/no-such-page"):
            await _get(handler, path)

    request_started.connect(seen)
    try:
        asyncio.run(requests())
    finally:
        request_started.disconnect(seen)
    api_first, api_second, page_first, page_second = threads
    assert api_first == api_second  # asgiref's one shared sync thread
    assert page_first != page_second  # Django's thread per request


# --- Django: InlineHooksMixin middleware (localai_site/middleware.py) ---------------


async def _ok(request: Any) -> HttpResponse:
    return HttpResponse("ok")


def test_djangos_middleware_mixin_keeps_the_async_entry_point_the_mixin_overrides() -> None:
    assert inspect.iscoroutinefunction(MiddlewareMixin.__acall__)
    assert hasattr(MiddlewareMixin(_ok), "async_mode")  # read by CsrfViewMiddleware


def test_inline_hooks_run_in_the_event_loop_thread() -> None:
    from django.middleware import security

    from localai_site.middleware import InlineHooksMixin

    hooks: list[str] = []

    class Probe(InlineHooksMixin, security.SecurityMiddleware):
        def process_request(self, request: Any) -> None:
            hooks.append(threading.current_thread().name)

        def process_response(self, request: Any, response: Any) -> Any:
            hooks.append(threading.current_thread().name)
            return response

    async def call() -> tuple[str, Any]:
        middleware = Probe(_ok)
        response = await middleware(RequestFactory().get("/"))
        return threading.current_thread().name, response

    loop_thread, response = asyncio.run(call())
    assert response.status_code == 200
    assert hooks == [loop_thread, loop_thread]


def test_the_csrf_middlewares_async_process_view_is_awaited_as_is() -> None:
    from localai_site.middleware import CsrfViewMiddleware

    middleware = CsrfViewMiddleware(_ok)
    assert middleware.async_mode
    assert inspect.iscoroutinefunction(middleware.process_view)
    # How Django's handler adapts process_view at startup: an async one unchanged.
    adapted = BaseHandler().adapt_method_mode(True, middleware.process_view)
    assert adapted == middleware.process_view
    assert "mw_instance.process_view" in inspect.getsource(BaseHandler.load_middleware)


def test_message_storage_keeps_the_attributes_the_middleware_reads(rf: RequestFactory) -> None:
    from django.contrib import messages
    from django.contrib.messages.middleware import MessageMiddleware
    from django.contrib.sessions.middleware import SessionMiddleware

    request = rf.get("/")
    SessionMiddleware(_ok).process_request(request)
    MessageMiddleware(_ok).process_request(request)
    storage = request._messages
    assert isinstance(storage, BaseStorage)
    assert (storage.used, storage.added_new) == (False, False)
    messages.add_message(request, message_levels.INFO, "hello")
    assert storage.added_new is True


def test_whitenoise_keeps_the_lookup_and_serve_methods_the_async_middleware_uses() -> None:
    from whitenoise.middleware import WhiteNoiseMiddleware

    from localai_site.middleware import AsyncWhiteNoiseMiddleware

    middleware = AsyncWhiteNoiseMiddleware(_ok)
    assert isinstance(middleware.files, dict)
    assert isinstance(middleware.autorefresh, bool)
    assert list(inspect.signature(WhiteNoiseMiddleware.find_file).parameters) == ["self", "url"]
    assert list(inspect.signature(WhiteNoiseMiddleware.serve).parameters) == [
        "static_file",
        "request",
    ]
    response = asyncio.run(middleware(RequestFactory().get("/not-static")))
    assert response.content == b"ok"


def test_the_readiness_log_filter_reads_djangos_documented_extras(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from django.utils.log import log_response

    request = RequestFactory().get("/readyz")
    with caplog.at_level(logging.ERROR, logger="django.request"):
        log_response(
            "Service Unavailable: %s",
            request.path,
            response=HttpResponse(status=503),
            request=request,
        )
    assert not [r for r in caplog.records if r.name == "django.request"]
