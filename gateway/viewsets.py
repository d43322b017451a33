"""adrf's ViewSet, with its request checks in the event loop when they may be.

Two departures from adrf, both through DRF's documented dispatch hooks
(`initialize_request`, `initial`, `handle_exception`, `finalize_response`):

- `view_is_async` is a plain class attribute. adrf answers it (asked by
  `dispatch` on every request) by listing every attribute of the class with
  `inspect`-style `getmembers`: about 9 % of the CPU of a proxied chat.
  Every action of the gateway's viewsets is a coroutine
  (tests/test_private_api_guards.py checks each one), so it is a constant.
- `initial` (content negotiation, authentication, permissions, throttles)
  runs in the event loop when every authentication, permission and throttle
  class of the view says it `runs_in_event_loop` (the API-key checks do with
  the default stores: `keys.policy.checks_are_local`). adrf always runs it
  in a worker thread: under Django's ASGI handler a new thread per request,
  about 1 ms of a first token. Authentication goes first: when it needs the
  database after all (a key not looked up yet), Django refuses that in the
  loop with `SynchronousOnlyOperation`, before anything is counted, and
  `initial` runs in a thread, as adrf runs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from inspect import iscoroutinefunction
from typing import Any

from adrf.viewsets import ViewSet as AdrfViewSet
from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.http import HttpResponseBase
from rest_framework.request import Request


def _in_loop(checks: Iterable[Any]) -> bool:
    return all(getattr(check, "runs_in_event_loop", False) for check in checks)


class ViewSet(AdrfViewSet):
    """Every viewset of the gateway derives from this instead of adrf's."""

    view_is_async = True

    def initial_runs_in_event_loop(self, request: Request) -> bool:
        """Whether every check of `initial` may run in the event loop."""
        return (
            _in_loop(request.authenticators)
            and _in_loop(self.get_permissions())
            and _in_loop(self.get_throttles())
        )

    async def async_initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """`initial`, in the event loop when it may be, else in a thread as adrf does."""
        if self.initial_runs_in_event_loop(request):
            try:
                self.perform_authentication(request)
            except SynchronousOnlyOperation:
                pass  # the key is not kept yet: authenticate in a thread
            else:
                self.initial(request, *args, **kwargs)  # authenticated: counted once, here
                return
        await sync_to_async(self.initial)(request, *args, **kwargs)

    async def async_dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """adrf's `async_dispatch`, with `async_initial` for its `initial` in a thread."""
        self.args = args
        self.kwargs = kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            await self.async_initial(request, *args, **kwargs)
            method = request.method.lower()
            if method in self.http_method_names:
                handler = getattr(self, method, self.http_method_not_allowed)
            else:
                handler = self.http_method_not_allowed
            if iscoroutinefunction(handler):
                response = await handler(request, *args, **kwargs)
            else:
                response = await sync_to_async(handler)(request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response
