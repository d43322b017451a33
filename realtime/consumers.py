"""The WebSocket chat consumer (`/ws/chat/<session_id>`).

Protocol (README, "WebSocket chat"): client frames `chat`, `cancel`, `clear`,
`ping`, `history`; server frames `user_message`, `assistant_start`,
`assistant_chunk`, `assistant_end`, `cleared`, `pong`, `history`, `error`,
and `notice` (an operator's broadcast, realtime.broadcast).

Authentication happened before this consumer runs (realtime.middleware); an
unauthenticated connection is closed with 4401 before any backend call.
Frames are dispatched one at a time, so a generation runs in its own task:
that is what lets `cancel`, `ping` and a disconnect reach us mid-answer.
Cancelling the task closes the backend stream (and so the HTTP request to
Ollama).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from gateway import drain, metrics, service
from gateway.backends import ChatChunk, ChatRequest, GenerationParams
from gateway.errors import APIError, AuthenticationError, as_api_error, request_id_var
from gateway.metering import UsageMeter
from gateway.observability import first_token_seconds, request_finish, request_id_new
from gateway.relay import BaseEncoder, relay
from gateway.scheduler import Queued
from keys import policy
from keys.policy import Caller
from realtime import auth, broadcast
from realtime.models import ChatSession
from realtime.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_IDLE,
    CLOSE_NOT_FOUND,
    CLOSE_RATE_LIMITED,
    CLOSE_UNAUTHENTICATED,
    SUBPROTOCOL,
    GenerationInProgressError,
    IdleTimeoutError,
    NothingToCancelError,
    chat_frame_validate,
    error_frame,
    frame_parse,
    offered_subprotocols,
    usage_payload,
)
from realtime.services import (
    chat_history_clear,
    chat_history_list,
    chat_session_get_or_create,
    chat_turn_save,
)

logger = logging.getLogger(__name__)

# Status recorded for a generation the client stopped (cancel or disconnect),
# as HTTP servers log a request whose client went away.
STATUS_CLIENT_CLOSED = 499


def _close_code_for(exc: APIError) -> int:
    return {401: CLOSE_UNAUTHENTICATED, 403: CLOSE_FORBIDDEN, 429: CLOSE_RATE_LIMITED}.get(
        exc.status, CLOSE_UNAUTHENTICATED
    )


class ChatFrameEncoder(BaseEncoder[ChatChunk, dict[str, Any]]):
    """The relay's frames for the chat: `assistant_chunk`s, or an `error` at the end.

    It keeps the answer's pieces and finish reason, which the consumer saves
    and sends in `assistant_end` once the relay is through.
    """

    __slots__ = ("error", "finish_reason", "pieces")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.finish_reason: str | None = None
        self.error: APIError | None = None

    def piece(self, chunk: ChatChunk) -> dict[str, Any] | None:
        if not chunk.content:
            return None
        self.pieces.append(chunk.content)
        return {"type": "assistant_chunk", "content": chunk.content}

    def closing(self, chunk: ChatChunk) -> tuple[dict[str, Any], ...]:
        self.finish_reason = chunk.done_reason
        frame = self.piece(chunk)
        return () if frame is None else (frame,)

    def failure(self, error: APIError) -> dict[str, Any]:
        self.error = error
        return error_frame(error)

    def queued(self, notice: Queued) -> dict[str, Any]:
        return {"type": "queued", "position": notice.position}


class _SteadyLayer:
    """A channel layer whose `receive` outlives the layer's errors.

    Channels ends a consumer when its channel layer's receive raises (Redis
    restarting, a read timing out); a chat connection only hears operators'
    notices there, so it waits and reads again instead, and the conversation
    goes on. Everything else is the layer's own.
    """

    def __init__(self, layer: Any) -> None:
        self._layer = layer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    async def receive(self, channel: str) -> Any:
        pause = 0.5
        while True:
            try:
                return await self._layer.receive(channel)
            except Exception as exc:  # the layer's failure is not the chat's
                logger.warning("Channel layer receive failed (%s); retrying in %g s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)


class ChatConsumer(AsyncWebsocketConsumer):
    """One chat connection of one caller (API key or user) on one session id."""

    # The channel layer carries operators' notices (realtime.broadcast) to the
    # connection's groups. Its errors must not end the chat: see _SteadyLayer.
    @property
    def channel_layer(self) -> Any:
        return self._channel_layer

    @channel_layer.setter
    def channel_layer(self, layer: Any) -> None:
        self._channel_layer = _SteadyLayer(layer) if layer is not None else None

    caller: Caller
    chat_session: ChatSession

    async def connect(self) -> None:
        self.session_id: str = self.scope["url_route"]["kwargs"]["session_id"]
        self._generation: asyncio.Task[None] | None = None
        self._stop_reason: str | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self._groups: list[str] = []
        self._last_activity = time.monotonic()
        self._handling = 0
        # Answer with the non-secret subprotocol only (a browser that offered
        # `bearer.<key>` must never get the key echoed back).
        offered = offered_subprotocols(self.scope)
        await self.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)

        # Accept-then-close: a close before accept becomes an HTTP 403 and the
        # client would never see the 4401 code.
        failure: APIError | None = self.scope.get("chat_auth_error")
        caller: Caller | None = self.scope.get("chat_caller")
        if failure is not None or caller is None:
            failure = failure or AuthenticationError()
            await self._send_frame(error_frame(failure))
            await self.close(code=_close_code_for(failure))
            return
        self.caller = caller
        self.chat_session = await database_sync_to_async(chat_session_get_or_create)(
            owner=caller, session_id=self.session_id
        )
        metrics.websocket_opened()
        # Operators' notices: to every session, and to this key's or user's.
        self._groups = broadcast.groups_for(caller)
        for group in self._groups:
            await self.channel_layer.group_add(group, self.channel_name)
        if settings.WS_IDLE_TIMEOUT > 0:
            self._idle_task = asyncio.create_task(self._idle_watch())

    async def disconnect(self, code: int) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
        if hasattr(self, "caller"):
            metrics.websocket_closed()
        for group in self._groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        # The client is gone: stop generating, which closes the backend request.
        await self._generation_stop(reason="disconnect")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self._last_activity = time.monotonic()
        if not hasattr(self, "caller"):
            return  # closing an unauthenticated connection; ignore what it sends
        # Each frame is a request of its own: its id is in its error frames,
        # and its log line (a generation task inherits it).
        request_id_var.set(request_id_new())
        # A message still being handled (its checks wait for the database on
        # a busy machine) keeps the connection from looking idle.
        self._handling += 1
        try:
            frame = frame_parse(text_data, bytes_data)
            handler = getattr(self, f"_on_{frame['type']}")
            await handler(frame)
        except Exception as exc:  # every failure is an error frame, never a dropped socket
            error = as_api_error(exc)  # logs anything unexpected
            await self._send_frame(error_frame(error))
            if isinstance(error, AuthenticationError):
                await self.close(code=CLOSE_UNAUTHENTICATED)
        finally:
            self._handling -= 1
            self._last_activity = time.monotonic()

    # --- client frames ---------------------------------------------------------

    async def _on_ping(self, frame: dict[str, Any]) -> None:
        await self._send_frame({"type": "pong"})

    async def _on_history(self, frame: dict[str, Any]) -> None:
        messages = await database_sync_to_async(chat_history_list)(chat_session=self.chat_session)
        await self._send_frame(
            {"type": "history", "session_id": self.session_id, "messages": messages}
        )

    async def _on_clear(self, frame: dict[str, Any]) -> None:
        # Clearing mid-answer stops the answer first, so it is not saved after.
        await self._generation_stop(reason="cancel")
        await database_sync_to_async(chat_history_clear)(chat_session=self.chat_session)
        await self._send_frame({"type": "cleared"})

    async def _on_cancel(self, frame: dict[str, Any]) -> None:
        if not self._generating():
            raise NothingToCancelError()
        await self._generation_stop(reason="cancel")

    async def _on_chat(self, frame: dict[str, Any]) -> None:
        drain.admit()  # a server shutting down starts no new answer
        fields = chat_frame_validate(frame)
        if self._generating():
            raise GenerationInProgressError()
        model = fields.get("model") or await service.default_model(kind="chat")
        meter = UsageMeter()
        started = time.monotonic()
        try:
            await database_sync_to_async(self._admit)(model=model, meter=meter)
        except APIError as exc:
            # A refused message is a call too: on record, naming its model.
            await self._usage_record(meter=meter, started=started, status=exc.status, error=exc)
            raise

        content: str = fields["message"]
        history = await database_sync_to_async(chat_history_list)(
            chat_session=self.chat_session, limit=max(settings.MAX_CHAT_MESSAGES - 1, 0)
        )
        request = ChatRequest(
            model=model,
            messages=[*history, {"role": "user", "content": content}],
            params=GenerationParams(
                temperature=fields.get("temperature"), max_tokens=fields.get("max_tokens")
            ),
        )
        await self._send_frame({"type": "user_message", "content": content})
        self._stop_reason = None
        self._generation = asyncio.create_task(
            self._generate(request=request, user_content=content, meter=meter, started=started)
        )
        # A drain on shutdown waits for the answer (and its usage record).
        drain.task_track(self._generation)

    def _admit(self, *, model: str, meter: UsageMeter) -> None:
        """The policy's checks of one chat message (sync: the ORM and the limits store).

        A revoked or expired key stops working from its next message on; the
        model must be allowed; every message counts against the chat limit.
        """
        policy.caller_recheck(caller=self.caller, raw_key=self.scope.get("chat_raw_key"))
        policy.request_admit(
            caller=self.caller, endpoint_group=auth.ENDPOINT_GROUP, model=model, meter=meter
        )

    # --- generation -------------------------------------------------------------

    def _generating(self) -> bool:
        return self._generation is not None and not self._generation.done()

    async def _generation_stop(self, *, reason: str) -> None:
        """Cancel the generation in progress (if any) and wait until it has cleaned up."""
        task = self._generation
        if task is None or task.done():
            return
        self._stop_reason = reason
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _generate(
        self, *, request: ChatRequest, user_content: str, meter: UsageMeter, started: float
    ) -> None:
        """Stream one answer: assistant_start, assistant_chunk..., then assistant_end or error.

        Exactly one `assistant_end` (possibly `cancelled`) or `error` follows
        every `assistant_start`. The turn is stored when it produced an answer
        (also a partial one the client cancelled); a failed turn is not.
        """
        encoder = ChatFrameEncoder()
        chunks = service.chat_stream(request=request, meter=meter, caller=self.caller, notices=True)
        frames = relay(chunks, encoder, meter)
        status, error = 200, None
        try:
            await self._send_frame({"type": "assistant_start", "model": request.model})
            async for frame in frames:
                await self._send_frame(frame)
            if encoder.error is not None:
                status, error = encoder.error.status, encoder.error
                return
            full_response = "".join(encoder.pieces)
            await database_sync_to_async(chat_turn_save)(
                chat_session=self.chat_session,
                user_content=user_content,
                assistant_content=full_response,
                model=request.model,
                prompt_tokens=meter.prompt_tokens,
                completion_tokens=meter.completion_tokens,
            )
            await self._send_frame(
                {
                    "type": "assistant_end",
                    "full_response": full_response,
                    "model": request.model,
                    "finish_reason": encoder.finish_reason,
                    "cancelled": False,
                    "usage": usage_payload(meter.prompt_tokens, meter.completion_tokens),
                }
            )
        except asyncio.CancelledError:
            # Stopped by `cancel`, `clear` or a disconnect (never by anything else).
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await frames.aclose()  # the backend stops; the meter counts what was sent
            status = STATUS_CLIENT_CLOSED
            meter.error_code = "cancelled"
            await self._generation_cancelled(
                request=request, user_content=user_content, pieces=encoder.pieces
            )
        except Exception as exc:
            error = as_api_error(exc)
            status = error.status
            # The client may be gone already (that can be why we are here).
            with contextlib.suppress(Exception):
                await self._send_frame(error_frame(error))
        finally:
            await frames.aclose()
            await self._usage_record(meter=meter, started=started, status=status, error=error)

    async def _generation_cancelled(
        self, *, request: ChatRequest, user_content: str, pieces: list[str]
    ) -> None:
        partial = "".join(pieces)
        if partial:
            await database_sync_to_async(chat_turn_save)(
                chat_session=self.chat_session,
                user_content=user_content,
                assistant_content=partial,
                model=request.model,
                cancelled=True,
            )
        if self._stop_reason == "cancel":
            await self._send_frame(
                {
                    "type": "assistant_end",
                    "full_response": partial,
                    "model": request.model,
                    "finish_reason": "cancelled",
                    "cancelled": True,
                    "usage": None,
                }
            )

    async def _usage_record(
        self, *, meter: UsageMeter, started: float, status: int, error: APIError | None
    ) -> None:
        try:
            await database_sync_to_async(policy.usage_record)(
                caller=self.caller,
                endpoint=auth.USAGE_ENDPOINT,
                meter=meter,
                status=status,
                latency_ms=round((time.monotonic() - started) * 1000),
                error_code=error.code if error is not None else None,
            )
        except Exception:  # accounting must never break the conversation
            logger.exception("Could not record WebSocket chat usage for %s", self.caller.id)
        with contextlib.suppress(Exception):
            request_finish(
                request_id=request_id_var.get() or request_id_new(),
                surface="websocket",
                endpoint="/ws/chat",
                method="chat",
                status=status,
                seconds=time.monotonic() - started,
                meter=meter,
                first_token_seconds=first_token_seconds(meter, started),
                key_prefix=self.caller.key_prefix,
            )

    # --- channel layer events ----------------------------------------------------------

    async def chat_notice(self, event: dict[str, Any]) -> None:
        """An operator's notice (realtime.broadcast): a `notice` frame."""
        await self._send_frame(
            {"type": "notice", "message": event["message"], "level": event["level"]}
        )

    # --- plumbing ------------------------------------------------------------------

    async def _send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, separators=(",", ":")))

    async def _idle_watch(self) -> None:
        """Close a connection that sent nothing for WS_IDLE_TIMEOUT seconds.

        A connection that is receiving an answer is not idle.
        """
        timeout = float(settings.WS_IDLE_TIMEOUT)
        while True:
            remaining = self._last_activity + timeout - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(remaining)
                continue
            if self._generating() or self._handling:
                self._last_activity = time.monotonic()
                continue
            await self._send_frame(
                error_frame(
                    IdleTimeoutError(
                        f"Closing the connection: no message for {timeout:g} s (WS_IDLE_TIMEOUT). "
                        'Send {"type": "ping"} to keep it open.'
                    )
                )
            )
            await self.close(code=CLOSE_IDLE)
            return


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: accept, say so, close 4404 (instead of a crash)."""

    async def connect(self) -> None:
        await self.accept()
        error = APIError(
            "No WebSocket endpoint here; the chat is at /ws/chat/<session_id> "
            "(session_id: 1-128 letters, digits, '.', '_' or '-').",
            code="not_found",
        )
        error.status, error.type = 404, "not_found_error"
        await self.send(text_data=json.dumps(error_frame(error)))
        await self.close(code=CLOSE_NOT_FOUND)
