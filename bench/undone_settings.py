"""The gateway's settings with Django's and WhiteNoise's stock middleware
(`BENCH_UNDO=inline_middleware`, bench/undone.py)."""

from localai_site.settings import *  # noqa: F403

MIDDLEWARE = [
    "keys.middleware.ApiUsageMiddleware",
    "gateway.middleware.ErrorEnvelopeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
