"""The operator's cockpit: API keys, their limits, their usage.

Creating a key shows the raw key exactly once, in the answer to the POST that
created it (rendered straight into that page: it is never put in the session,
a message cookie, a form, a list or the log). Revoking and extending are
actions; every change lands in the admin's own history (LogEntry).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.db.models import Avg, Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from keys.models import ENDPOINT_GROUPS, ApiKey, ApiKeyStatus, UsageRecord
from keys.services import api_key_extend, api_key_issue, api_key_parse, api_key_revoke

EXTEND_DAYS = 30
USAGE_DEFAULT_DAYS = 30
_RAW_KEY_ATTR = "_keys_admin_raw_key"
_USE_FIELDS = ("created_at", "revoked_at", "usage_count", "last_used_at", "usage_link")


class ApiKeyForm(forms.ModelForm):
    allowed_endpoints = forms.MultipleChoiceField(
        choices=ENDPOINT_GROUPS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Endpoint groups this key may call. None ticked: all.",
    )
    allowed_models = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text="One model per line (or comma-separated), e.g. qwen2.5:14b. Empty: all.",
    )

    class Meta:
        model = ApiKey
        fields = [
            "name",
            "owner",
            "expires_at",
            "rate_limit",
            "tokens_per_minute",
            "priority",
            "max_concurrent",
            "max_queued",
            "allowed_endpoints",
            "allowed_models",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["allowed_models"] = "\n".join(self.instance.allowed_models or [])

    def clean_allowed_models(self) -> list[str]:
        text = self.cleaned_data.get("allowed_models") or ""
        return [name.strip() for name in re.split(r"[,\n]", text) if name.strip()]

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        if not self.instance.pk and expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("A new key must expire in the future.")
        return expires_at


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(status.value, status.label) for status in ApiKeyStatus]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        now = timezone.now()
        if self.value() == ApiKeyStatus.ACTIVE:
            return queryset.usable()  # type: ignore[attr-defined]
        if self.value() == ApiKeyStatus.REVOKED:
            return queryset.filter(is_active=False)
        if self.value() == ApiKeyStatus.EXPIRED:
            return queryset.filter(is_active=True, expires_at__lte=now)
        return queryset


_STATUS_COLOURS = {
    ApiKeyStatus.ACTIVE: "#1a7f37",
    ApiKeyStatus.REVOKED: "#cf222e",
    ApiKeyStatus.EXPIRED: "#9a6700",
}


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = (
        "key_prefix",
        "name",
        "owner",
        "status_badge",
        "limit",
        "usage_count",
        "last_used_at",
        "expires_at",
        "usage_link",
    )
    list_display_links = ("key_prefix", "name")
    list_filter = (StatusFilter, ("owner", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("name", "prefix", "owner__username", "owner__email")
    # Searching is a GET: a whole key typed here would land in URLs and access
    # logs. "Find by key" (find_view) takes it in a POST instead.
    search_help_text = "Name, prefix or owner. To find a key from the whole key: Find by key."
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    actions = ("revoke_selected", "extend_expiry")
    readonly_fields = (
        "key_prefix",
        "status_badge",
        "created_at",
        "revoked_at",
        "usage_count",
        "last_used_at",
        "usage_link",
    )
    change_form_template = "admin/keys/apikey/change_form.html"

    def get_fieldsets(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        editable = [
            "name",
            "owner",
            "expires_at",
            "rate_limit",
            "tokens_per_minute",
            "priority",
            "max_concurrent",
            "max_queued",
            "allowed_endpoints",
            "allowed_models",
        ]
        if obj is None:
            return [(None, {"fields": editable})]
        return [
            (None, {"fields": ["key_prefix", "status_badge", *editable]}),
            ("Use", {"fields": [*_USE_FIELDS]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is not None and not obj.is_active:
            # Revocation is final: a revoked key is a record, not a setting.
            return (
                *self.readonly_fields,
                "name",
                "owner",
                "expires_at",
                "rate_limit",
                "tokens_per_minute",
                "priority",
                "max_concurrent",
                "max_queued",
                "allowed_endpoints",
                "allowed_models",
            )
        return self.readonly_fields

    # --- columns ----------------------------------------------------------

    @admin.display(description="key", ordering="prefix")
    def key_prefix(self, obj: ApiKey) -> str:
        return f"lai_{obj.prefix}_…" if obj.prefix else "—"

    @admin.display(description="status")
    def status_badge(self, obj: ApiKey) -> str:
        status = obj.status
        return format_html(
            '<strong style="color:{}">{}</strong>', _STATUS_COLOURS[status], status.label
        )

    @admin.display(description="limit / min", ordering="rate_limit")
    def limit(self, obj: ApiKey) -> str:
        requests = f"{obj.rate_limit} req" if obj.rate_limit else "defaults"
        if obj.tokens_per_minute:
            return f"{requests}, {obj.tokens_per_minute} tok"
        return requests

    @admin.display(description="usage")
    def usage_link(self, obj: ApiKey) -> str:
        if not obj.pk:
            return "—"
        url = reverse("admin:keys_apikey_usage", args=[obj.pk])
        return format_html('<a href="{}">usage</a>', url)

    # --- create: the raw key once ----------------------------------------------

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        setattr(request, _RAW_KEY_ATTR, api_key_issue(api_key=obj))

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        raw_key = getattr(request, _RAW_KEY_ATTR, None)
        if raw_key is None or IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API key created",
            "api_key": obj,
            "raw_key": raw_key,
            "change_url": reverse("admin:keys_apikey_change", args=[obj.pk]),
            "add_url": reverse("admin:keys_apikey_add"),
            "changelist_url": reverse("admin:keys_apikey_changelist"),
        }
        response = TemplateResponse(request, "admin/keys/apikey/created.html", context)
        # The page holds a secret: never cache it, never show it again.
        response["Cache-Control"] = "no-store"
        return response

    # --- actions -------------------------------------------------------------

    @admin.action(description="Revoke selected API keys (final)")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for api_key in queryset.filter(is_active=True):
            api_key_revoke(api_key=api_key)
            self.log_change(request, api_key, "Revoked.")
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)

    @admin.action(description=f"Extend expiry of selected keys by {EXTEND_DAYS} days")
    def extend_expiry(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        extended = 0
        for api_key in queryset:
            if api_key_extend(api_key=api_key, days=EXTEND_DAYS):
                self.log_change(
                    request, api_key, f"Extended expiry to {api_key.expires_at:%Y-%m-%d %H:%M} UTC."
                )
                extended += 1
        skipped = queryset.count() - extended
        note = f" ({skipped} skipped: revoked or never expiring)" if skipped else ""
        self.message_user(request, f"Extended {extended} API key(s){note}.", messages.SUCCESS)

    # --- extra pages: revoke one, usage -------------------------------------------

    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "<path:object_id>/usage/",
                self.admin_site.admin_view(self.usage_view),
                name="keys_apikey_usage",
            ),
            path("find/", self.admin_site.admin_view(self.find_view), name="keys_apikey_find"),
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name="keys_apikey_revoke",
            ),
        ]
        return extra + super().get_urls()

    def find_view(self, request: HttpRequest) -> HttpResponse:
        """A pasted whole key opens its page; POST only, so the key is in no URL."""
        not_found = False
        if request.method == "POST":
            prefix = api_key_parse(request.POST.get("key", "").strip())
            api_key = ApiKey.objects.filter(prefix=prefix).first() if prefix else None
            if api_key is not None and self.has_view_permission(request, api_key):
                return HttpResponseRedirect(reverse("admin:keys_apikey_change", args=[api_key.pk]))
            not_found = True
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Find an API key by the whole key",
            "not_found": not_found,
        }
        return TemplateResponse(request, "admin/keys/apikey/find.html", context)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        api_key = get_object_or_404(ApiKey, pk=object_id)
        if not self.has_change_permission(request, api_key):
            return HttpResponse(status=403)
        change_url = reverse("admin:keys_apikey_change", args=[api_key.pk])
        if request.method == "POST":
            if api_key.is_active:
                api_key_revoke(api_key=api_key)
                self.log_change(request, api_key, "Revoked.")
                self.message_user(request, f"Revoked {api_key}.", messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Revoke API key",
            "api_key": api_key,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/keys/apikey/revoke.html", context)

    def usage_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        api_key = get_object_or_404(ApiKey.objects.select_related("owner"), pk=object_id)
        if not self.has_view_permission(request, api_key):
            return HttpResponse(status=403)
        try:
            days = max(1, min(366, int(request.GET.get("days", USAGE_DEFAULT_DAYS))))
        except ValueError:
            days = USAGE_DEFAULT_DAYS
        records = UsageRecord.objects.filter(
            api_key=api_key, created_at__gte=timezone.now() - timedelta(days=days)
        )
        errors = Count("id", filter=Q(status__gte=400))
        totals = records.aggregate(
            requests=Count("id"),
            prompt_tokens=Sum("prompt_tokens", default=0),
            completion_tokens=Sum("completion_tokens", default=0),
            errors=errors,
            avg_latency=Avg("latency_ms"),
        )
        by_day_model = (
            records.annotate(day=TruncDate("created_at"))
            .values("day", "model")
            .annotate(
                requests=Count("id"),
                prompt_tokens=Sum("prompt_tokens"),
                completion_tokens=Sum("completion_tokens"),
                errors=errors,
                avg_latency=Avg("latency_ms"),
            )
            .order_by("-day", "model")
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Usage of {api_key}",
            "api_key": api_key,
            "days": days,
            "day_choices": (1, 7, 30, 90, 365),
            "totals": totals,
            "by_day_model": list(by_day_model),
            "last_errors": list(
                UsageRecord.objects.filter(api_key=api_key, status__gte=400).order_by(
                    "-created_at"
                )[:20]
            ),
            "change_url": reverse("admin:keys_apikey_change", args=[api_key.pk]),
            "records_url": reverse("admin:keys_usagerecord_changelist")
            + f"?api_key__id__exact={api_key.pk}",
        }
        return TemplateResponse(request, "admin/keys/apikey/usage.html", context)


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """Every request, read-only: the raw material of the usage pages."""

    list_display = (
        "created_at",
        "api_key",
        "endpoint",
        "model",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "queued_ms",
        "backend",
        "error_code",
    )
    list_filter = ("status", "model", "backend", "endpoint", "api_key")
    search_fields = ("api_key__name", "api_key__prefix", "model", "error_code")
    date_hierarchy = "created_at"
    list_select_related = ("api_key",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
