"""System checks for configuration mistakes that would bite in production."""

from __future__ import annotations

import importlib.util
from pathlib import Path
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
    problems.extend(_embedded_check())
    return problems


def _embedded_check() -> list[Any]:
    """The embedded backend is on but cannot serve: say so at startup, not at first use."""
    if not settings.EMBEDDED_BACKEND:
        return []
    if importlib.util.find_spec("llama_cpp") is None:
        return [
            Warning(
                "EMBEDDED_BACKEND is on but llama-cpp-python is not installed.",
                hint="Run 'make engine', or set EMBEDDED_BACKEND=off.",
                id="localai.W003",
            )
        ]
    problems: list[Any] = []
    for name in ("EMBEDDED_CHAT_MODEL_PATH", "EMBEDDED_EMBEDDING_MODEL_PATH"):
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            problems.append(
                Warning(
                    f"{name}={path!r} is not a file: the embedded backend will not serve it.",
                    hint="Run 'make engine' (it converts all-MiniLM), or fix the path.",
                    id="localai.W004",
                )
            )
    return problems
