"""Content negotiation that answers in JSON instead of refusing with 406.

The API speaks one body format per answer: JSON, or `text/event-stream`
for a streamed chat (built by the view, not by a renderer). DRF's default
negotiation refuses a request whose `Accept` names neither JSON nor `*/*`
with 406, so an SSE client that sends only `Accept: text/event-stream`
(as EventSource-style clients do) could not even start a stream. Here such
a request gets the view's first renderer, JSON, whatever it accepts.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class JSONFallbackNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: Any = None
    ) -> tuple[BaseRenderer, str]:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            if format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE):
                raise  # an explicit ?format= that no renderer has stays an error
            return renderers[0], renderers[0].media_type
