"""`/metrics`: the Prometheus scrape endpoint.

Open to the addresses in `METRICS_ALLOWED_ADDRESSES` (default loopback) and
to signed-in staff; anyone else gets 403. The client address is the
connection's (`REMOTE_ADDR`), never a header a client can write.
"""

from __future__ import annotations

import ipaddress
from functools import cache

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from gateway import metrics, service
from gateway.errors import PermissionDeniedError, error_response

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _allowed_networks() -> tuple[Network, ...]:
    return tuple(
        ipaddress.ip_network(entry, strict=False) for entry in settings.METRICS_ALLOWED_ADDRESSES
    )


@receiver(setting_changed)
def _networks_reset(*, setting: str, **kwargs: object) -> None:
    if setting == "METRICS_ALLOWED_ADDRESSES":
        _allowed_networks.cache_clear()


def address_allowed(address: str | None) -> bool:
    """Whether `address` is in one of the `METRICS_ALLOWED_ADDRESSES` networks."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in _allowed_networks())


@require_GET
async def metrics_view(request: HttpRequest) -> HttpResponse:
    """Every metric in the Prometheus text format (see the README, "Observability")."""
    if not address_allowed(request.META.get("REMOTE_ADDR")):
        user = await request.auser()
        if not (user.is_active and user.is_staff):
            return error_response(
                PermissionDeniedError(
                    "/metrics is open to the addresses in METRICS_ALLOWED_ADDRESSES and to staff.",
                    code="metrics_forbidden",
                )
            )
    await service.backends_status()
    body = await sync_to_async(metrics.metrics_render, thread_sensitive=False)()
    return HttpResponse(body, content_type=metrics.CONTENT_TYPE)
