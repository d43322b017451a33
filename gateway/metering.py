"""Per-request usage facts that views fill in and usage accounting reads.

A view (or a streaming generator, at its final chunk) writes what the backend
reported; whatever records usage reads it once the response, or the stream,
has ended. Keeping it on the request means no shared state between requests.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest


@dataclass(slots=True)
class UsageMeter:
    """What one request used. `model` is empty for calls that name none."""

    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error_code: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def charge(self, *, model: str, prompt_tokens: int, completion_tokens: int = 0) -> None:
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens


def meter_for(request: HttpRequest) -> UsageMeter:
    """The request's meter (created on first use). Accepts DRF requests too."""
    django_request = getattr(request, "_request", request)
    meter = getattr(django_request, "usage_meter", None)
    if meter is None:
        meter = UsageMeter()
        django_request.usage_meter = meter
    return meter
