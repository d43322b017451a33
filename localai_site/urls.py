"""Top-level routes. Each surface lives in its own app's urls module."""

from django.contrib import admin
from django.urls import include, path

from apis import probes

urlpatterns = [
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("v1/", include("apis.urls")),
    path("admin/", admin.site.urls),
    # The browser chat page at `/`, its model list, sign-in and sign-out.
    path("", include("realtime.urls")),
]
