"""Stored chat conversations of the WebSocket chat.

A conversation belongs to exactly one owner, an API key or a (session-logged-in)
user, and is named by the client's `session_id`. The same `session_id` used by
another owner is another conversation: history is never shared across owners.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ChatSession(models.Model):
    """One conversation: (owner, session_id)."""

    session_id = models.CharField(max_length=128)
    api_key = models.ForeignKey(
        "keys.ApiKey",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="chat_sessions",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="chat_sessions",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "session_id"],
                condition=Q(api_key__isnull=False),
                name="realtime_chatsession_unique_per_key",
            ),
            models.UniqueConstraint(
                fields=["user", "session_id"],
                condition=Q(user__isnull=False),
                name="realtime_chatsession_unique_per_user",
            ),
            models.CheckConstraint(
                condition=(
                    Q(api_key__isnull=False, user__isnull=True)
                    | Q(api_key__isnull=True, user__isnull=False)
                ),
                name="realtime_chatsession_exactly_one_owner",
            ),
        ]

    def __str__(self) -> str:
        owner = f"key {self.api_key_id}" if self.api_key_id else f"user {self.user_id}"
        return f"{self.session_id} ({owner})"


class ChatMessage(models.Model):
    """One message of a conversation, in the order it was said."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    chat_session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()
    model = models.CharField(max_length=200, blank=True)
    # An answer the client cancelled part-way; what was shown is kept.
    cancelled = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"
