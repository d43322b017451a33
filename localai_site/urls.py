"""Top-level routes. Each surface lives in its own app's urls module."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularJSONAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
    SpectacularYAMLAPIView,
)

from compat.ollama_views import ollama_root
from gateway import probes, scrape
from gateway.schema import local_only
from keys.backends_admin import backends_admin_view

# Requests Django refuses before any view (e.g. a Host not in ALLOWED_HOSTS):
# the API's error shapes instead of Django's HTML page.
handler400 = "gateway.middleware.bad_request"

urlpatterns = [
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    # Prometheus metrics (loopback and staff only: METRICS_ALLOWED_ADDRESSES).
    path("metrics", scrape.metrics_view, name="metrics"),
    # The API documentation, open without a key (SPECTACULAR_SETTINGS).
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi-json"),
    path("openapi.yaml", SpectacularYAMLAPIView.as_view(), name="openapi-yaml"),
    path(
        "docs",
        local_only(SpectacularSwaggerView.as_view(url_name="openapi-json")),
        name="docs",
    ),
    path(
        "redoc",
        # The package's page minus its web-font links: nothing loads from outside.
        local_only(
            SpectacularRedocView.as_view(
                url_name="openapi-json", template_name="gateway/redoc.html"
            )
        ),
        name="redoc",
    ),
    path("v1/", include("apis.urls")),
    # OpenAI's API for the openai SDKs and LangChain; Ollama's own API (and
    # its OpenAI mirror under /ollama/v1/) for Ollama clients. Same service.
    path("openai/v1/", include("compat.openai_urls")),
    # Anthropic's Messages API for the anthropic SDKs; Ollama serves it under /v1/ too.
    path("anthropic/v1/", include("compat.anthropic_urls")),
    path(
        "ollama/v1/",
        include(("compat.anthropic_urls", "anthropic_compat"), namespace="ollama_anthropic"),
    ),
    path(
        "ollama/v1/",
        include(("compat.openai_urls", "openai_compat"), namespace="ollama_openai_compat"),
    ),
    path("ollama/", include("compat.ollama_urls")),
    # `OLLAMA_HOST=.../ollama` clients probe the base URL itself, without a slash.
    path("ollama", ollama_root, name="ollama-root"),
    # The key-management API (staff only), before the admin's catch-all.
    path("", include("keys.urls")),
    # The operator's dashboard and broadcast form (staff only).
    path("admin/ops/", include("observability.urls")),
    # Read-only: each backend's state and the scheduler's queues (staff).
    path("admin/backends/", backends_admin_view, name="keys_admin_backends"),
    path("admin/", admin.site.urls),
    # The browser chat page at `/`, its model list, sign-in and sign-out.
    path("", include("realtime.urls")),
]
