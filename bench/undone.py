"""The gateway with one speed-up that relies on a library's private API undone,
for the A/B of `make bench` ("Speed-ups on private APIs" in BENCHMARKS.md).

`BENCH_UNDO` names the speed-up; the stock public behaviour replaces it
before the gateway's ASGI application is built. Benchmark code only: the
gateway itself never imports this.

    BENCH_UNDO=byte_stream_response uvicorn bench.undone:application
"""

from __future__ import annotations

import os

import django

UNDO = os.environ.get("BENCH_UNDO", "")
SPEEDUPS = {
    # name: (where it lives, what it reaches into, the load that shows it)
    "byte_stream_response": (
        "gateway/streaming.py `ByteStreamResponse`",
        "Django's `StreamingHttpResponse._iterator` / `_set_streaming_content`",
        "stream",
    ),
    "response_stream": (
        "gateway/backends/ollama.py `_Transport` / `_ResponseStream`",
        "httpx-aiohttp's `AiohttpResponseStream._aiohttp_response`",
        "stream",
    ),
    "asgi_handler": (
        "localai_site/handlers.py `GatewayASGIHandler`",
        "Django's `ASGIHandler.handle` without `__call__`'s `ThreadSensitiveContext`",
        "chat",
    ),
    "inline_middleware": (
        "localai_site/middleware.py `InlineHooksMixin` subclasses",
        "Django's `MiddlewareMixin.__acall__` and hook adaptation, WhiteNoise's "
        "`files`/`find_file`/`serve`",
        "chat",
    ),
}
if UNDO and UNDO not in SPEEDUPS:
    raise SystemExit(f"BENCH_UNDO={UNDO!r}: not one of {sorted(SPEEDUPS)}")

if UNDO == "inline_middleware":
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.undone_settings"
else:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "localai_site.settings")
django.setup(set_prefix=False)

if UNDO == "byte_stream_response":
    from django.http import StreamingHttpResponse

    from gateway import streaming

    streaming.ByteStreamResponse = StreamingHttpResponse  # type: ignore[misc]
elif UNDO == "response_stream":
    from httpx_aiohttp import AiohttpTransport

    from gateway.backends import ollama

    ollama._Transport = AiohttpTransport  # type: ignore[misc]

from localai_site.asgi import application  # noqa: E402

if UNDO == "asgi_handler":
    from django.core.handlers.asgi import ASGIHandler

    # The drain's guard (localai_site/shutdown.py) wraps the protocol router.
    application.app.application_mapping["http"] = ASGIHandler()

__all__ = ["application"]
