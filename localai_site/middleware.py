"""Django's own middleware, run in the event loop instead of a worker thread.

Under ASGI, Django runs every hook of a `MiddlewareMixin` middleware
(`process_request`, `process_response`, `process_view`) through
`sync_to_async`: one thread switch per hook, about fourteen per request for
the stock middleware list, most of the gateway's CPU per API call. These hooks
do no I/O in the common case (they read headers and cookies, set headers), so
the subclasses below call them directly in the event loop, and fall back to a
worker thread exactly when a hook would touch the database:

- sessions: saving a modified session (or every session with
  SESSION_SAVE_EVERY_REQUEST);
- messages: storing messages that were added or read;
- CSRF: any hook when the token lives in the session (CSRF_USE_SESSIONS), and
  the check of an unsafe request to a view that is not exempt (it may parse a
  form body spooled to disk).

WhiteNoise's middleware is sync-only, which is worse: one sync-only
middleware makes Django run every middleware above it in a thread and hop
back below it. `AsyncWhiteNoiseMiddleware` looks a URL up in the event loop
(a dict lookup: files are indexed at startup) and only serves an actual
static file, which opens it, from a thread.

Behaviour is Django's own: same classes, same hooks, same order; only where
they run changes. Served by WSGI or the test client, they run as usual.

One exception: the middleware only the browser-facing pages use (sessions,
the logged-in user, messages, CSRF) lets API requests (`/v1/`, `/openai/`,
`/ollama/`, the probes) pass straight through. Those are authenticated by API
key, are CSRF-exempt, and never read a session or a message; skipping four
middleware layers there saves ~15 % of the CPU of a proxied chat (CPU per
request, 6 ABAB rounds: median 1.95 against 2.29 ms).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csrf, security
from whitenoise.middleware import WhiteNoiseMiddleware

from localai_site.handlers import API_PATH_PREFIXES

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class InlineHooksMixin:
    """Runs a `MiddlewareMixin`'s hooks in the event loop unless they need I/O."""

    get_response: Callable[[HttpRequest], Any]
    # True for the middleware only the browser-facing pages use (sessions,
    # logged-in users, messages, CSRF): API requests pass straight through.
    browser_only = False

    def request_needs_thread(self, request: HttpRequest) -> bool:
        return False

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if self.browser_only and request.path_info.startswith(API_PATH_PREFIXES):
            return await self.get_response(request)
        response = None
        process_request = getattr(self, "process_request", None)
        if process_request is not None:
            if self.request_needs_thread(request):
                response = await sync_to_async(process_request, thread_sensitive=True)(request)
            else:
                response = process_request(request)
        response = response or await self.get_response(request)
        process_response = getattr(self, "process_response", None)
        if process_response is not None:
            if self.response_needs_thread(request, response):
                response = await sync_to_async(process_response, thread_sensitive=True)(
                    request, response
                )
            else:
                response = process_response(request, response)
        return response


class SecurityMiddleware(InlineHooksMixin, security.SecurityMiddleware):
    pass


class SessionMiddleware(InlineHooksMixin, sessions_middleware.SessionMiddleware):
    browser_only = True

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(InlineHooksMixin, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(InlineHooksMixin, csrf.CsrfViewMiddleware):
    browser_only = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        if self.async_mode:  # type: ignore[attr-defined]
            # Django adapts process_view once, at startup: a coroutine is awaited as is.
            self.process_view = self._process_view_async  # type: ignore[method-assign]

    def request_needs_thread(self, request: HttpRequest) -> bool:
        return settings.CSRF_USE_SESSIONS

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return settings.CSRF_USE_SESSIONS

    async def _process_view_async(
        self, request: HttpRequest, callback: Any, callback_args: Any, callback_kwargs: Any
    ) -> HttpResponseBase | None:
        check = csrf.CsrfViewMiddleware.process_view
        inline = not settings.CSRF_USE_SESSIONS and (
            getattr(callback, "csrf_exempt", False) or request.method in _SAFE_METHODS
        )
        if inline:
            return check(self, request, callback, callback_args, callback_kwargs)
        return await sync_to_async(check, thread_sensitive=True)(
            self, request, callback, callback_args, callback_kwargs
        )


class AuthenticationMiddleware(InlineHooksMixin, auth_middleware.AuthenticationMiddleware):
    browser_only = True


class MessageMiddleware(InlineHooksMixin, messages_middleware.MessageMiddleware):
    browser_only = True

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class XFrameOptionsMiddleware(InlineHooksMixin, clickjacking.XFrameOptionsMiddleware):
    pass


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise that never moves a non-static request off the event loop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any], **kwargs: Any) -> None:
        super().__init__(get_response, **kwargs)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if self.autorefresh:
            # Development (DEBUG): files are looked up on disk per request.
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(
                request.path_info
            )
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)
