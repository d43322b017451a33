"""OpenAI shapes <-> the inference service's typed requests and results.

Pure functions and async generators, no I/O: the views call these and
`gateway.service`. Mapping (see `spec/wire.md` D.6): `max_tokens` /
`max_completion_tokens` -> `options.num_predict`, `stop` -> `options.stop`,
`response_format` -> `format`, tool-call arguments JSON strings <-> objects,
image data URLs -> `images`, usage from the backend's own token counts.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import string
import struct
import time
import uuid
from typing import Any

from django.conf import settings

from gateway.backends import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    GenerateChunk,
    GenerateRequest,
    GenerateResult,
    GenerationParams,
    ModelInfo,
    ToolCall,
)
from gateway.errors import APIError, BadRequestError, error_body
from gateway.relay import BaseEncoder
from gateway.streaming import compact_json, json_object_head, json_string, sse_event
from gateway.validation import tool_problem

# OpenAI's reasoning_effort -> Ollama's `think`.
_THINK = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high"}
_ALPHANUM = string.ascii_lowercase + string.digits


def unix_now() -> int:
    return int(time.time())


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def tool_call_id() -> str:
    """`call_` + 8 lowercase alphanumerics, as Ollama makes them."""
    return "call_" + "".join(secrets.choice(_ALPHANUM) for _ in range(8))


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


# --- models ---------------------------------------------------------------------


def owned_by(model_id: str) -> str:
    """The namespace of a model name: `library` for official models."""
    parts = model_id.split(":", 1)[0].split("/")
    return parts[-2] if len(parts) > 1 else "library"


def model_object(model: ModelInfo, *, model_id: str | None = None) -> dict[str, Any]:
    return {
        "id": model_id or model.id,
        "object": "model",
        "created": int(model.modified_at.timestamp()) if model.modified_at else 0,
        "owned_by": owned_by(model.id),
    }


# --- requests -------------------------------------------------------------------


def refuse_unsupported(data: dict[str, Any]) -> None:
    """400 naming the first parameter the backend cannot honour."""
    if (data.get("n") or 1) > 1:
        raise BadRequestError("Only n=1 is supported: the backend makes one choice.", param="n")
    if (data.get("best_of") or 1) > 1:
        raise BadRequestError("Only best_of=1 is supported.", param="best_of")
    if data.get("logit_bias"):
        raise BadRequestError("logit_bias is not supported by the backend.", param="logit_bias")
    if data.get("logprobs"):
        raise BadRequestError("logprobs are not supported by this gateway.", param="logprobs")
    if data.get("top_logprobs"):
        raise BadRequestError(
            "top_logprobs is not supported by this gateway.", param="top_logprobs"
        )
    if data.get("echo"):
        raise BadRequestError("echo is not supported by the backend.", param="echo")
    if data.get("audio") or "audio" in (data.get("modalities") or ()):
        raise BadRequestError("Audio output is not supported by the backend.", param="audio")


def _params(data: dict[str, Any]) -> GenerationParams:
    return GenerationParams(
        max_tokens=data.get("max_completion_tokens") or data.get("max_tokens"),
        temperature=data.get("temperature"),
        top_p=data.get("top_p"),
        seed=data.get("seed"),
        frequency_penalty=data.get("frequency_penalty"),
        presence_penalty=data.get("presence_penalty"),
        stop=data.get("stop") or None,
    )


def _format(response_format: dict[str, Any] | None) -> str | dict[str, Any] | None:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        json_schema = response_format.get("json_schema")
        schema = json_schema.get("schema") if isinstance(json_schema, dict) else None
        if not isinstance(schema, dict):
            raise BadRequestError(
                "response_format.json_schema.schema must be a JSON Schema object.",
                param="response_format.json_schema.schema",
            )
        return schema
    raise BadRequestError(
        f"Unsupported response_format type {kind!r}: use text, json_object or json_schema.",
        param="response_format.type",
    )


def _data_url_image(url: Any, param: str) -> str:
    """The base64 payload of a `data:image/...;base64,` URL."""
    if not isinstance(url, str) or not url.startswith("data:"):
        raise BadRequestError(
            "Image URLs are not supported: send the image inline as a base64 data URL "
            "(data:image/png;base64,...).",
            param=param,
        )
    header, _, payload = url.partition(",")
    if ";base64" not in header or not payload:
        raise BadRequestError("The image data URL must be base64-encoded.", param=param)
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError("The image data URL holds invalid base64.", param=param) from None
    return payload


def _content(content: Any, index: int) -> tuple[str, list[str]]:
    """Text and base64 images of one message's `content`."""
    param = f"messages.{index}.content"
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise BadRequestError("content must be a string or a list of parts.", param=param)
    texts: list[str] = []
    images: list[str] = []
    for part_index, part in enumerate(content):
        part_param = f"{param}.{part_index}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else image_url
            images.append(_data_url_image(url, f"{part_param}.image_url.url"))
        elif kind == "refusal":
            texts.append(str(part.get("refusal") or ""))
        else:
            raise BadRequestError(
                f"Unsupported content part type {kind!r}: use text or image_url.",
                param=f"{part_param}.type",
            )
    return "".join(texts), images


def _assistant_tool_calls(
    calls: list[dict[str, Any]], index: int, names_by_id: dict[str, str]
) -> list[dict[str, Any]]:
    converted: list[dict[str, Any]] = []
    for call_index, call in enumerate(calls):
        param = f"messages.{index}.tool_calls.{call_index}.function"
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequestError("A tool call needs function.name.", param=f"{param}.name")
        arguments = function.get("arguments") or "{}"
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                raise BadRequestError(
                    "Tool call arguments must be a JSON object string.",
                    param=f"{param}.arguments",
                ) from None
        if not isinstance(arguments, dict):
            raise BadRequestError(
                "Tool call arguments must be a JSON object.", param=f"{param}.arguments"
            )
        native: dict[str, Any] = {"function": {"name": function["name"], "arguments": arguments}}
        if call.get("id"):
            names_by_id[str(call["id"])] = function["name"]
            native["id"] = str(call["id"])
        converted.append(native)
    return converted


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    converted: list[dict[str, Any]] = []
    names_by_id: dict[str, str] = {}
    for index, message in enumerate(messages):
        role = "system" if message["role"] == "developer" else message["role"]
        text, images = _content(message.get("content"), index)
        native: dict[str, Any] = {"role": role, "content": text}
        if images:
            native["images"] = images
        if message.get("tool_calls"):
            # Checked on any message (bad input is a 400 wherever it is); sent on the
            # assistant's, the only ones Ollama reads them from.
            tool_calls = _assistant_tool_calls(message["tool_calls"], index, names_by_id)
            if role == "assistant":
                native["tool_calls"] = tool_calls
        if role == "tool":
            # Ollama links a tool result to its call by the function's name.
            name = message.get("name") or names_by_id.get(str(message.get("tool_call_id")))
            if name:
                native["tool_name"] = name
        converted.append(native)
    return converted


def _tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> list[dict[str, Any]] | None:
    """OpenAI tools as Ollama takes them, narrowed by `tool_choice`.

    Ollama has no `tool_choice`: `none` sends no tools, a named function sends
    only that one; `auto` and `required` send them all (the model decides).
    Both are checked whatever the other says: a bad value is a 400 either way.
    """
    wanted = _tool_choice_name(tool_choice)
    converted: list[dict[str, Any]] = []
    for index, tool in enumerate(tools or ()):
        function = tool.get("function")
        if tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise BadRequestError("Only function tools are supported.", param=f"tools.{index}.type")
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise BadRequestError("A tool needs function.name.", param=f"tools.{index}.function")
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise BadRequestError(
                "function.description must be a string.",
                param=f"tools.{index}.function.description",
            )
        parameters = function.get("parameters")
        if parameters is not None and (
            not isinstance(parameters, dict) or parameters.get("type", "object") != "object"
        ):
            raise BadRequestError(
                "function.parameters must be a JSON Schema of type object.",
                param=f"tools.{index}.function.parameters",
            )
        spec: dict[str, Any] = {"name": function["name"]}
        if description:
            spec["description"] = description
        if parameters is not None:
            spec["parameters"] = parameters
        tool = {"type": "function", "function": spec}
        problem = tool_problem(tool)
        if problem:
            raise BadRequestError(f"Invalid tool: {problem}.", param=f"tools.{index}")
        converted.append(tool)
    if not converted or tool_choice == "none":
        return None
    if wanted is not None:
        chosen = [tool for tool in converted if tool["function"]["name"] == wanted]
        if not chosen:
            raise BadRequestError(
                f"tool_choice names {wanted!r}, which is not in tools.", param="tool_choice"
            )
        return chosen
    return converted


def _tool_choice_name(tool_choice: Any) -> str | None:
    """The function a `tool_choice` object names; None for the strings (400 if malformed)."""
    if tool_choice in (None, "none", "auto", "required"):
        return None
    if isinstance(tool_choice, dict):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if tool_choice.get("type", "function") == "function" and isinstance(name, str) and name:
            return name
    raise BadRequestError(
        'tool_choice must be none, auto, required or {"type": "function", '
        '"function": {"name": ...}}.',
        param="tool_choice",
    )


def chat_request_from(data: dict[str, Any]) -> ChatRequest:
    """The backend request for a validated OpenAI chat body (400 if it can't be honoured)."""
    refuse_unsupported(data)
    think: bool | str | None = None
    if data.get("reasoning_effort") is not None:
        if data["reasoning_effort"] not in _THINK:
            raise BadRequestError(
                "reasoning_effort must be none, minimal, low, medium or high.",
                param="reasoning_effort",
            )
        think = _THINK[data["reasoning_effort"]]
    return ChatRequest(
        model=data["model"],
        messages=_messages(data["messages"]),
        params=_params(data),
        format=_format(data.get("response_format")),
        tools=_tools(data.get("tools"), data.get("tool_choice")),
        think=think,
    )


def completion_request_from(data: dict[str, Any]) -> GenerateRequest:
    """The backend request for a validated OpenAI (legacy) completions body."""
    refuse_unsupported(data)
    prompt = data["prompt"]
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequestError(
            "prompt must be a string (batches and token arrays are not supported).",
            param="prompt",
        )
    return GenerateRequest(
        model=data["model"],
        prompt=prompt,
        suffix=data.get("suffix") or None,
        params=_params(data),
    )


# Token ids are OpenAI's (cl100k_base) and mean nothing to a local model: decoding
# them needs that vocabulary, which no well-kept package ships (tiktoken downloads
# it at run time, which a gateway must not do).
TOKEN_ARRAYS_REFUSED = (
    "Token arrays are not supported: send the text. LangChain's OpenAIEmbeddings sends "
    "token ids by default: set check_embedding_ctx_length=False "
    "(OpenAIEmbeddings(..., check_embedding_ctx_length=False))."
)


def _token_ids(value: Any) -> bool:
    """A list of token ids (or a list of such lists)."""
    if not isinstance(value, list) or not value:
        return False
    return all(isinstance(item, int) and not isinstance(item, bool) for item in value) or all(
        isinstance(item, list) and item and all(isinstance(i, int) for i in item) for item in value
    )


def embedding_inputs_from(raw: Any) -> list[str]:
    """Inputs of an OpenAI embeddings body: a string or a list of strings."""
    items = [raw] if isinstance(raw, str) else raw
    if _token_ids(items):
        raise BadRequestError(TOKEN_ARRAYS_REFUSED, param="input")
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise BadRequestError("input must be a string or a list of strings.", param="input")
    if not items or any(not item for item in items):
        raise BadRequestError("input must not be empty or hold empty strings.", param="input")
    if len(items) > settings.MAX_EMBEDDING_INPUTS:
        raise BadRequestError(
            f"At most {settings.MAX_EMBEDDING_INPUTS} inputs per request (MAX_EMBEDDING_INPUTS).",
            param="input",
        )
    for index, item in enumerate(items):
        if len(item) > settings.MAX_EMBEDDING_INPUT_CHARS:
            raise BadRequestError(
                f"Input {index} is longer than {settings.MAX_EMBEDDING_INPUT_CHARS} characters "
                "(MAX_EMBEDDING_INPUT_CHARS).",
                param="input",
            )
    return items


# --- responses ------------------------------------------------------------------


def finish_reason(done_reason: str | None, *, tool_calls: bool) -> str:
    if done_reason == "length":
        return "length"
    return "tool_calls" if tool_calls else "stop"


def tool_call_object(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": call.id or tool_call_id(),
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
    }
    if index is not None:
        item = {"index": index, **item}
    return item


def chat_completion(
    result: ChatResult, *, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    """A whole `chat.completion` object."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": result.content or (None if result.tool_calls else ""),
        "refusal": None,
    }
    if result.tool_calls:
        message["tool_calls"] = [tool_call_object(call) for call in result.tool_calls]
    if result.thinking:
        message["reasoning"] = result.thinking
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(
                    result.done_reason, tool_calls=bool(result.tool_calls)
                ),
            }
        ],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
    }


def _event_frame(
    completion_id: str, kind: str, created: int, model: str, include_usage: bool, field: str
) -> tuple[str, str]:
    """The constant start (up to the choice's `field`) and end of a stream's events.

    `prefix + <field's JSON> + ',"logprobs":null,"finish_reason":...}]' + end`
    is the `data:` event `sse_event` would write for the whole object, byte for byte.
    """
    head = json_object_head(
        {
            "id": completion_id,
            "object": kind,
            "created": created,
            "model": model,
            "system_fingerprint": None,
        }
    )
    end = ',"usage":null}\n\n' if include_usage else "}\n\n"
    return f'data: {head},"choices":[{{"index":0,{field}', end


class ChatCompletionEncoder(BaseEncoder[ChatChunk, bytes]):
    """`chat.completion.chunk` SSE events in OpenAI's order, then `[DONE]`.

    Role chunk first, content (and tool-call, reasoning) deltas as the backend
    produces them, a finish chunk, the usage chunk when asked for, `[DONE]`.
    A failure after the first byte ends the stream with `data: {"error": ...}`
    and no `[DONE]` (the relay's rule), which the openai SDK raises as `APIError`.
    """

    __slots__ = ("created", "end", "id", "include_usage", "model", "prefix", "text_end", "tools")

    def __init__(
        self, *, completion_id: str, created: int, model: str, include_usage: bool
    ) -> None:
        self.id, self.created, self.model = completion_id, created, model
        self.include_usage = include_usage
        # The events differ only in their delta and finish reason: the rest is
        # encoded once per stream.
        self.prefix, self.end = _event_frame(
            completion_id, "chat.completion.chunk", created, model, include_usage, '"delta":'
        )
        self.text_end = f',"logprobs":null,"finish_reason":null}}]{self.end}'
        self.tools = 0

    def _event(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return (
            f'{self.prefix}{compact_json(delta)},"logprobs":null,'
            f'"finish_reason":{compact_json(finish)}}}]{self.end}'
        ).encode()

    def opening(self) -> tuple[bytes]:
        return (self._event({"role": "assistant", "content": ""}),)

    def piece(self, chunk: ChatChunk) -> bytes | None:
        if not (chunk.thinking or chunk.tool_calls):
            if not chunk.content:
                return None
            return (
                f'{self.prefix}{{"content":{json_string(chunk.content)}}}{self.text_end}'.encode()
            )
        events = []
        if chunk.thinking:
            events.append(
                f'{self.prefix}{{"reasoning":{json_string(chunk.thinking)}}}{self.text_end}'.encode()
            )
        if chunk.content:
            events.append(
                f'{self.prefix}{{"content":{json_string(chunk.content)}}}{self.text_end}'.encode()
            )
        if chunk.tool_calls:
            calls = [
                tool_call_object(call, self.tools + offset)
                for offset, call in enumerate(chunk.tool_calls)
            ]
            self.tools += len(calls)
            events.append(self._event({"tool_calls": calls}))
        return b"".join(events)

    def closing(self, chunk: ChatChunk) -> list[bytes]:
        events = []
        last_piece = self.piece(chunk)
        if last_piece is not None:
            events.append(last_piece)
        events.append(self._event({}, finish_reason(chunk.done_reason, tool_calls=self.tools > 0)))
        if self.include_usage:
            events.append(_usage_event(self, "chat.completion.chunk", chunk))
        return events

    def failure(self, error: APIError) -> bytes:
        return sse_event(error_body(error))

    def success(self) -> bytes:
        return sse_event("[DONE]")


def _usage_event(
    encoder: ChatCompletionEncoder | CompletionEncoder, kind: str, chunk: ChatChunk | GenerateChunk
) -> bytes:
    """The extra usage chunk of `stream_options.include_usage`."""
    return sse_event(
        {
            "id": encoder.id,
            "object": kind,
            "created": encoder.created,
            "model": encoder.model,
            "system_fingerprint": None,
            "choices": [],
            "usage": usage(chunk.prompt_tokens, chunk.completion_tokens),
        }
    )


def completion_object(
    result: GenerateResult, *, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    """A whole `text_completion` object."""
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "text": result.text,
                "logprobs": None,
                "finish_reason": finish_reason(result.done_reason, tool_calls=False),
            }
        ],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
    }


class CompletionEncoder(BaseEncoder[GenerateChunk, bytes]):
    """`text_completion` SSE events, the finish reason on the last, then `[DONE]`."""

    __slots__ = ("created", "end", "id", "include_usage", "model", "prefix")

    def __init__(
        self, *, completion_id: str, created: int, model: str, include_usage: bool
    ) -> None:
        self.id, self.created, self.model = completion_id, created, model
        self.include_usage = include_usage
        self.prefix, self.end = _event_frame(
            completion_id, "text_completion", created, model, include_usage, '"text":'
        )

    def _event(self, text: str, finish: str | None = None) -> bytes:
        return (
            f'{self.prefix}{json_string(text)},"logprobs":null,'
            f'"finish_reason":{compact_json(finish)}}}]{self.end}'
        ).encode()

    def piece(self, chunk: GenerateChunk) -> bytes | None:
        return self._event(chunk.text) if chunk.text else None

    def closing(self, chunk: GenerateChunk) -> list[bytes]:
        events = [self._event(chunk.text, finish_reason(chunk.done_reason, tool_calls=False))]
        if self.include_usage:
            events.append(_usage_event(self, "text_completion", chunk))
        return events

    def failure(self, error: APIError) -> bytes:
        return sse_event(error_body(error))

    def success(self) -> bytes:
        return sse_event("[DONE]")


def embedding_base64(vector: list[float]) -> str:
    """Little-endian float32 bytes, base64-encoded (what the openai SDK decodes)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embedding_list(
    embeddings: list[list[float]], *, model: str, encoding_format: str, prompt_tokens: int
) -> dict[str, Any]:
    encode = embedding_base64 if encoding_format == "base64" else (lambda vector: vector)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": encode(vector), "index": index}
            for index, vector in enumerate(embeddings)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
