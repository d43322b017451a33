"""Per-request usage facts that the service and the stream relay fill in, and
usage accounting reads.

The service (for a whole answer) and the relay (for a stream, at its final
chunk) write what the backend reported; whatever records usage reads it once
the response, or the stream, has ended. Keeping it on the request means no
shared state between requests.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest


@dataclass(slots=True)
class UsageMeter:
    """What one request used. `model` is empty for calls that name none.

    `relayed_tokens` counts the streamed pieces sent so far (one token each,
    as Ollama and the embedded engine stream them): when a stream is cut
    before the backend's own counts arrive, they are what was delivered.
    """

    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error_code: str | None = None
    relayed_tokens: int = 0
    # time.monotonic() when the relay sent the first token (streams only).
    first_token_at: float | None = None
    backend: str = ""  # the backend that served the call
    queued_ms: int = 0  # time spent waiting for a backend slot

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def charge(self, *, prompt_tokens: int, completion_tokens: int = 0) -> None:
        """The backend's own counts for one whole generation.

        A request asking for `n` choices runs n generations: each is charged
        here, so the meter holds their sum (one usage record per request).
        """
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def cut(self, *, error_code: str) -> None:
        """The call ended early: count what was delivered, and say why (unless said)."""
        if self.error_code is None:
            self.error_code = error_code
        self.completion_tokens = max(self.completion_tokens, self.relayed_tokens)


def meter_for(request: HttpRequest) -> UsageMeter:
    """The request's meter (created on first use). Accepts DRF requests too."""
    django_request = getattr(request, "_request", request)
    meter = getattr(django_request, "usage_meter", None)
    if meter is None:
        meter = UsageMeter()
        django_request.usage_meter = meter
    return meter
