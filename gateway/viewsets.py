"""adrf's ViewSet, answering `view_is_async` without working it out per request.

adrf answers `view_is_async` (asked by `dispatch` on every request) by
listing every attribute of the class with `inspect`-style `getmembers`:
about 9 % of the CPU of a proxied chat. Every action of the gateway's
viewsets is a coroutine (tests/test_private_api_guards.py checks each one),
so the answer is a constant: the same attribute Django's `View` and adrf
read, set as a plain class attribute; nothing of adrf's internals is used.
"""

from __future__ import annotations

from adrf.viewsets import ViewSet as AdrfViewSet


class ViewSet(AdrfViewSet):
    """Every viewset of the gateway derives from this instead of adrf's."""

    view_is_async = True
