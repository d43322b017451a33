"""adrf's ViewSet, with `view_is_async` worked out once per class.

adrf answers `view_is_async` (asked by `dispatch` on every request) by
listing every attribute of the class with `inspect`-style `getmembers`:
about 9 % of the CPU of a proxied chat. A class's methods do not change
while it serves, so the answer is kept per class.
"""

from __future__ import annotations

from adrf.viewsets import ViewSet as AdrfViewSet
from django.utils.functional import classproperty

_view_is_async: dict[type, bool] = {}
_adrf_view_is_async = AdrfViewSet.__dict__["view_is_async"]


class ViewSet(AdrfViewSet):
    """Every viewset of the gateway derives from this instead of adrf's."""

    @classproperty
    def view_is_async(cls) -> bool:
        try:
            return _view_is_async[cls]
        except KeyError:
            value = _view_is_async[cls] = bool(_adrf_view_is_async.__get__(None, cls))
            return value
