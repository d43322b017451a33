"""Shapes of the key-management API (`/admin/api-keys`)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from gateway.schema import example
from gateway.validation import StrictJSONMixin
from keys.models import ENDPOINT_GROUPS, ApiKey

# PositiveIntegerField's range on every database; ten years of validity at most.
MAX_PER_MINUTE = 2_147_483_647
MAX_EXPIRES_DAYS = 3650


EXAMPLE_KEY = {
    "prefix": "Ab3dE5gH",
    "name": "reporting service",
    "owner": "alice",
    "status": "active",
    "created_at": "2026-01-15T10:30:00Z",
    "expires_at": "2026-04-15T10:30:00Z",
    "revoked_at": None,
    "rate_limit": 120,
    "tokens_per_minute": None,
    "allowed_endpoints": ["chat", "embeddings"],
    "allowed_models": [],
    "usage_count": 42,
    "last_used_at": "2026-01-16T08:00:00Z",
}


@example(
    "key",
    {
        "name": "reporting service",
        "owner": "alice",
        "expires_days": 90,
        "rate_limit": 120,
        "allowed_endpoints": ["chat", "embeddings"],
    },
)
class ApiKeyCreateInputSerializer(StrictJSONMixin, serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_days = serializers.IntegerField(
        min_value=1, max_value=MAX_EXPIRES_DAYS, required=False, allow_null=True
    )
    rate_limit = serializers.IntegerField(
        min_value=1, max_value=MAX_PER_MINUTE, required=False, allow_null=True
    )
    tokens_per_minute = serializers.IntegerField(
        min_value=1, max_value=MAX_PER_MINUTE, required=False, allow_null=True
    )
    allowed_endpoints = serializers.ListField(
        child=serializers.ChoiceField(choices=[name for name, _ in ENDPOINT_GROUPS]),
        required=False,
        default=list,
    )
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list
    )
    owner = serializers.CharField(
        required=False, allow_null=True, help_text="Username of the user responsible for the key."
    )

    def validate_owner(self, value: str | None) -> Any:
        if not value:
            return None
        try:
            return get_user_model().objects.get_by_natural_key(value)
        except get_user_model().DoesNotExist:
            raise serializers.ValidationError(f"No user named {value!r}.") from None


@example("key", EXAMPLE_KEY)
class ApiKeyOutputSerializer(serializers.ModelSerializer):
    owner = serializers.SerializerMethodField()
    status = serializers.CharField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "prefix",
            "name",
            "owner",
            "status",
            "created_at",
            "expires_at",
            "revoked_at",
            "rate_limit",
            "tokens_per_minute",
            "allowed_endpoints",
            "allowed_models",
            "usage_count",
            "last_used_at",
        ]
        read_only_fields = fields

    def get_owner(self, obj: ApiKey) -> str | None:
        return obj.owner.get_username() if obj.owner else None


@example(
    "created",
    {
        "api_key": "lai_Ab3dE5gH_" + "x" * 38 + "Q1w2E3",
        "note": "This key will only appear once",
        **EXAMPLE_KEY,
        "usage_count": 0,
        "last_used_at": None,
    },
)
class ApiKeyCreatedSerializer(ApiKeyOutputSerializer):
    """The one answer that carries the raw key."""

    api_key = serializers.CharField(help_text="The raw key. Shown once; store it now.")
    note = serializers.CharField()

    class Meta(ApiKeyOutputSerializer.Meta):
        fields = ["api_key", "note", *ApiKeyOutputSerializer.Meta.fields]
