"""Password lockout for every password entry point, with django-axes.

The admin's login (`/admin/login/`), the chat page's (`/accounts/login/`) and
the basic auth of the key-management API (`/admin/api-keys`) all sign in
through `django.contrib.auth.authenticate`. Its first backend is axes'
`AxesStandaloneBackend`: after LOGIN_FAILURE_LIMIT failures from one client
address, or for one username from anywhere, it refuses every attempt for
LOGIN_LOCKOUT_MINUTES, the right password included, before the next backend
hashes anything (a guess costs a database lookup, not ~0.5 s of CPU).
Failures are stored in the database, so every server process sees them.

This module only decides what a refused attempt looks like: a plain 429 page
on the two login forms (axes' `AXES_LOCKOUT_CALLABLE`), the API's error
envelope on the key-management API (raised by its authentication class).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from gateway.errors import RateLimitedError


def lockout_seconds() -> int:
    """How long a lockout lasts (LOGIN_LOCKOUT_MINUTES), in seconds."""
    return max(1, round(settings.AXES_COOLOFF_TIME.total_seconds()))


def lockout_message() -> str:
    minutes = max(1, round(lockout_seconds() / 60))
    return (
        f"Too many failed sign-in attempts for this account or from this address: "
        f"signing in is refused for {minutes} min (LOGIN_LOCKOUT_MINUTES)."
    )


def login_locked_out_error() -> RateLimitedError:
    """The envelope's answer to a locked-out password attempt (429 with Retry-After)."""
    return RateLimitedError(lockout_seconds(), lockout_message(), code="login_locked_out")


def lockout_response(request: HttpRequest, *args: Any) -> HttpResponse:
    """axes' AXES_LOCKOUT_CALLABLE: what the login forms answer while locked."""
    response = HttpResponse(lockout_message(), status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(lockout_seconds())
    return response
