"""API keys and the usage they record.

Only a lookup prefix and a SHA-256 hash of each key are stored; the raw key
exists once, in the answer to whoever created it (see `keys.services`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

# Endpoint groups a key can be limited to. Every API view declares one as its
# `endpoint_group`; rate-limit defaults are per group too.
ENDPOINT_GROUPS: tuple[tuple[str, str], ...] = (
    ("models", "Models (list, details)"),
    ("chat", "Chat completions (REST and WebSocket)"),
    ("embeddings", "Embeddings"),
    # Pull, push, create, copy, delete models through the Ollama-compatible API.
    ("ollama_admin", "Ollama model management (only when ticked)"),
)
ENDPOINT_GROUP_NAMES: frozenset[str] = frozenset(name for name, _ in ENDPOINT_GROUPS)
# Groups an empty allow-list does NOT grant: they change the backend for
# everyone, so an operator must tick them on the key.
# Ollama's model-management calls (pull, push, create, delete, copy): a key has
# this group only when its allow-list names it.
OLLAMA_ADMIN_GROUP = "ollama_admin"
EXPLICIT_ONLY_GROUPS: frozenset[str] = frozenset({OLLAMA_ADMIN_GROUP})


class ApiKeyStatus(models.TextChoices):
    ACTIVE = "active", "active"
    REVOKED = "revoked", "revoked"
    EXPIRED = "expired", "expired"


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def update(self, **kwargs: Any) -> int:
        """Bulk updates skip `post_save`: say here that keys changed (see `keys.keycache`).

        Except the usage flusher's counters, which no process keeps.
        """
        from keys import keycache

        if set(kwargs) <= keycache.USAGE_FIELDS:
            return super().update(**kwargs)
        # Before too: a generation that cannot be moved fails the change itself.
        keycache.generation_bump()
        rows = super().update(**kwargs)
        keycache.generation_bump()
        return rows

    def usable(self) -> ApiKeyQuerySet:
        """Keys that authenticate right now: not revoked, not expired."""
        return self.filter(is_active=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )


class ApiKey(models.Model):
    """One API key. Revocation (`is_active=False`) is final."""

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="api_keys",
        help_text="Optional: the person responsible for this key.",
    )
    prefix = models.CharField(
        max_length=8,
        unique=True,
        editable=False,
        help_text="Identifies the key in the admin and in logs; the key starts lai_<prefix>_.",
    )
    hashed_key = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: the key never expires."
    )
    is_active = models.BooleanField(default=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    rate_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests per minute per endpoint group. Empty: the defaults "
        "(chat 60, embeddings 120, others 100).",
    )
    tokens_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Prompt + completion tokens per minute, charged with the backend's "
        "counts. Empty: no token limit.",
    )
    priority = models.PositiveSmallIntegerField(
        default=1,
        help_text="Share of the backend's slots while requests wait: a key of priority 3 "
        "is served three times as often as a key of priority 1 (fair queueing).",
    )
    max_concurrent = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests of this key a backend runs at once; more wait their turn. "
        "Empty: KEY_MAX_CONCURRENT_DEFAULT.",
    )
    max_queued = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests of this key that may wait for a backend slot; more get 429. "
        "Empty: KEY_MAX_QUEUED_DEFAULT.",
    )
    allowed_endpoints = models.JSONField(
        default=list, blank=True, help_text="Endpoint groups this key may call. Empty: all."
    )
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Models this key may use. Empty: all."
    )
    usage_count = models.PositiveBigIntegerField(default=0, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ("-created_at",)
        constraints = [
            # Revoked exactly when revoked_at is set: no way back to active.
            models.CheckConstraint(
                condition=Q(is_active=True, revoked_at__isnull=True)
                | Q(is_active=False, revoked_at__isnull=False),
                name="keys_apikey_revoked_at_matches_is_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (lai_{self.prefix}_…)"

    @property
    def status(self) -> ApiKeyStatus:
        if not self.is_active:
            return ApiKeyStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return ApiKeyStatus.EXPIRED
        return ApiKeyStatus.ACTIVE


class UsageRecord(models.Model):
    """One authenticated request: what it asked for and what it cost."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage_records")
    endpoint = models.CharField(max_length=200)
    model = models.CharField(max_length=200, blank=True)
    status = models.PositiveSmallIntegerField()
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    queued_ms = models.PositiveIntegerField(
        default=0, help_text="Time the request waited for a backend slot."
    )
    backend = models.CharField(max_length=64, blank=True, help_text="The backend that served it.")
    error_code = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = [models.Index(fields=["api_key", "-created_at"], name="keys_usage_key_created")]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.status} ({self.created_at:%Y-%m-%d %H:%M:%S})"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
