"""System checks of the key settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Warning, register


@register()
def auth_switch_check(app_configs: Any, **kwargs: Any) -> list[Any]:
    """Warn when the API is open to anyone on a server that is not in DEBUG."""
    if settings.GATEWAY_AUTH_ENABLED or settings.DEBUG:
        return []
    return [
        Warning(
            "GATEWAY_AUTH_ENABLED is off: anyone who can reach the server may call the API "
            "without a key, and no usage is recorded.",
            hint="Only for benchmarks and local experiments; unset it (default: on) "
            "before exposing the server.",
            id="keys.W001",
        )
    ]
