"""`check --deploy` for the middleware `localai_site/middleware.py` subclasses.

Django's deploy checks look for its security, clickjacking and CSRF
middleware by dotted path. MIDDLEWARE lists this project's subclasses of
them instead, so Django reported them missing (security.W001, W002, W003,
silenced in settings as false) and, believing them absent, skipped the checks
that depend on them: HSTS, the HTTPS redirect, `X-Frame-Options`, the
secure CSRF cookie. These checks find the middleware by class, emit
`localai.W010`-`W012` when one is really missing, and run the skipped
checks with Django's own warnings (and ids).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register
from django.core.checks.security import base, csrf
from django.middleware import clickjacking, security
from django.middleware import csrf as csrf_middleware
from django.utils.module_loading import import_string


def _installed(middleware: type) -> bool:
    for path in settings.MIDDLEWARE:
        try:
            cls = import_string(path)
        except ImportError:
            continue
        if isinstance(cls, type) and issubclass(cls, middleware):
            return True
    return False


def _missing(name: str, id: str) -> Warning:
    return Warning(f"No subclass of Django's {name} in MIDDLEWARE.", id=id)


@register(Tags.security, deploy=True)
def subclassed_middleware_check(app_configs: Any, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    if not _installed(security.SecurityMiddleware):
        problems.append(_missing("SecurityMiddleware", "localai.W010"))
    else:
        if not settings.SECURE_HSTS_SECONDS:
            problems.append(base.W004)
        else:
            if not settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
                problems.append(base.W005)
            if not settings.SECURE_HSTS_PRELOAD:
                problems.append(base.W021)
        if not settings.SECURE_CONTENT_TYPE_NOSNIFF:
            problems.append(base.W006)
        if not settings.SECURE_SSL_REDIRECT:
            problems.append(base.W008)
        if not settings.SECURE_REFERRER_POLICY:
            problems.append(base.W022)
    if not _installed(clickjacking.XFrameOptionsMiddleware):
        problems.append(_missing("XFrameOptionsMiddleware", "localai.W011"))
    elif settings.X_FRAME_OPTIONS != "DENY":
        problems.append(base.W019)
    if not _installed(csrf_middleware.CsrfViewMiddleware):
        problems.append(_missing("CsrfViewMiddleware", "localai.W012"))
    elif not settings.CSRF_USE_SESSIONS and not settings.CSRF_COOKIE_SECURE:
        problems.append(csrf.W016)
    return problems
