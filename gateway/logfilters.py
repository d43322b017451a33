"""Logging filters named in settings.LOGGING (imported before the apps load:
nothing here may import models or the core)."""

from __future__ import annotations

import logging

READINESS_PATH = "/readyz"


class ReadinessNotLoggedAsError(logging.Filter):
    """Drops `django.request`'s ERROR line for a failing readiness probe.

    An orchestrator polls `/readyz` every few seconds; its 503 is an expected
    answer, which `gateway.probes` logs once per change as a warning, not
    "Service Unavailable" on every poll. `django.request` records carry the
    request and its status code (Django's documented `extra` context).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not (
            getattr(record, "status_code", None) == 503
            and getattr(request, "path", None) == READINESS_PATH
        )
