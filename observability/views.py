"""The operator's pages in the admin: the live dashboard and the broadcast form.

Thin: they call `observability.services` and `realtime.broadcast`. Staff only
(wrapped in `admin.site.admin_view` in `observability.urls`).
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from gateway import service
from keys.models import ApiKey
from observability.charts import line_chart
from observability.services import WINDOW_MINUTES, Snapshot, dashboard_snapshot
from realtime import broadcast

REFRESH_SECONDS = 5


def _charts(snapshot: Snapshot) -> dict[str, str]:
    x_labels = (f"-{WINDOW_MINUTES} min", "now")
    return {
        "requests_chart": line_chart(
            title="Requests per minute",
            series=[
                ("requests", snapshot.requests_per_minute, "#417690"),
                ("errors", snapshot.errors_per_minute, "#ba2121"),
            ],
            x_labels=x_labels,
        ),
        "tokens_chart": line_chart(
            title="Tokens per minute",
            series=[("tokens", snapshot.tokens_per_minute, "#5b8a3c")],
            x_labels=x_labels,
        ),
    }


def _live_context() -> dict[str, object]:
    async_to_sync(service.backends_status)()  # fresh backend_up and queue_depth
    snapshot = dashboard_snapshot()
    return {"snapshot": snapshot, **_charts(snapshot), "refresh_seconds": REFRESH_SECONDS}


def dashboard(request: HttpRequest) -> HttpResponse:
    """The dashboard page; its script swaps in `dashboard_live` every few seconds."""
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        **_live_context(),
    }
    return TemplateResponse(request, "observability/dashboard.html", context)


def dashboard_live(request: HttpRequest) -> HttpResponse:
    """The dashboard's numbers and charts alone (an HTML fragment)."""
    return TemplateResponse(request, "observability/dashboard_live.html", _live_context())


class BroadcastForm(forms.Form):
    message = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))
    level = forms.ChoiceField(choices=[(level, level) for level in broadcast.LEVELS])
    api_key = forms.ModelChoiceField(
        queryset=ApiKey.objects.filter(is_active=True),
        required=False,
        help_text="Only the sessions of this key.",
    )
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True),
        required=False,
        help_text="Only the sessions of this user.",
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("api_key") and data.get("user"):
            raise forms.ValidationError("Choose a key or a user, not both (neither: everyone).")
        return data


def broadcast_view(request: HttpRequest) -> HttpResponse:
    """Send a notice to every chat session, or to one key's or one user's."""
    form = BroadcastForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        api_key, user = form.cleaned_data["api_key"], form.cleaned_data["user"]
        async_to_sync(broadcast.notice_send)(
            message=form.cleaned_data["message"],
            level=form.cleaned_data["level"],
            key_id=api_key.pk if api_key else None,
            user_id=user.pk if user else None,
        )
        audience = f"the sessions of {api_key or user}" if api_key or user else "every session"
        messages.success(request, f"Notice sent to {audience}.")
        return redirect("observability:broadcast")
    context = {**admin.site.each_context(request), "title": "Broadcast a notice", "form": form}
    return TemplateResponse(request, "observability/broadcast.html", context)
