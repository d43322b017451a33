"""What the compatible APIs keep between requests: stored Responses (OpenAI's
`store: true`), so `previous_response_id` continues a conversation."""

from __future__ import annotations

from django.db import models


class StoredResponse(models.Model):
    """One answer of `POST /openai/v1/responses`, readable only by the caller that made it.

    `messages` is the whole conversation up to and including this answer, in
    the backend's message shape (without `instructions`, which OpenAI does not
    carry over to the next turn); `body` is the response object as returned.
    """

    id = models.CharField(primary_key=True, max_length=64)
    owner = models.CharField(
        max_length=64, db_index=True, help_text="The caller: key:<pk>, user:<pk> or addr:<ip>."
    )
    api_key = models.ForeignKey(
        "keys.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    model = models.CharField(max_length=256)
    created_at = models.DateTimeField(auto_now_add=True)
    messages = models.JSONField()
    body = models.JSONField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.id
