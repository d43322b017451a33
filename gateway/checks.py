"""System checks for configuration mistakes that would bite in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def settings_check(app_configs: Any, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    if not settings.DEBUG and settings.SECRET_KEY == settings.INSECURE_DEV_SECRET_KEY:
        problems.append(
            Warning(
                "SECRET_KEY is the built-in development key.",
                hint="Set SECRET_KEY in the environment or .env before exposing the server.",
                id="localai.W001",
            )
        )
    if not settings.OLLAMA_HOST.startswith(("http://", "https://")):
        problems.append(
            Error(
                f"OLLAMA_HOST={settings.OLLAMA_HOST!r} has no scheme.",
                hint="Use e.g. http://127.0.0.1:11434",
                id="localai.E002",
            )
        )
    return problems
