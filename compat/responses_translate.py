"""OpenAI Responses shapes <-> the inference service's typed requests and results.

Pure functions and an encoder, no I/O: `compat.responses_views` calls these,
`gateway.service` and the store. Mapping: `input` (a string, or items:
messages, `function_call`, `function_call_output`) -> Ollama-shaped messages
after the stored conversation of `previous_response_id`; `instructions` -> a
system message (this turn only, as OpenAI does); flat function `tools` and
`tool_choice` -> Ollama tools; `text.format` -> `format`;
`max_output_tokens` / `temperature` / `top_p` -> `GenerationParams`;
`reasoning.effort` -> `think`. Function-call ids (`call_...`) are the
backend's own when it gives one, and travel back in `function_call_output`.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from typing import Any

from compat.openai_translate import tool_call_id
from gateway.backends import ChatChunk, ChatRequest, ChatResult, GenerationParams, ToolCall
from gateway.errors import APIError, BadRequestError
from gateway.relay import BaseEncoder
from gateway.validation import tool_problem

_THINK = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high"}


def data_url_image(url: Any, param: str) -> str:
    """The base64 payload of a `data:image/...;base64,` URL (else a 400 naming `param`)."""
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


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# --- requests -------------------------------------------------------------------


def _text_and_images(content: Any, param: str) -> tuple[str, list[str]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise BadRequestError("content must be a string or a list of parts.", param=param)
    texts: list[str] = []
    images: list[str] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal":
            texts.append(str(part.get("refusal") or ""))
        elif kind == "input_image":
            images.append(data_url_image(part.get("image_url"), f"{param}.{index}.image_url"))
        else:
            raise BadRequestError(
                f"Unsupported content part type {kind!r}: use input_text or input_image "
                "(a base64 data URL).",
                param=f"{param}.{index}.type",
            )
    return "".join(texts), images


def _tool_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Call id -> function name, from the assistant turns of a conversation."""
    return {
        call["id"]: call["function"]["name"]
        for message in messages
        for call in message.get("tool_calls") or ()
        if call.get("id")
    }


def input_messages(raw: Any, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This turn's `input` as Ollama-shaped messages (`history` names earlier calls)."""
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise BadRequestError("input must be a string or a non-empty list of items.", param="input")
    names = _tool_names(history)
    converted: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        param = f"input.{index}"
        if not isinstance(item, dict):
            raise BadRequestError("Each input item must be an object.", param=param)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise BadRequestError(
                    "role must be user, assistant, system or developer.", param=f"{param}.role"
                )
            text, images = _text_and_images(item.get("content"), f"{param}.content")
            message: dict[str, Any] = {
                "role": "system" if role == "developer" else role,
                "content": text,
            }
            if images:
                message["images"] = images
            converted.append(message)
        elif kind == "function_call":
            name, arguments = item.get("name"), item.get("arguments") or "{}"
            try:
                parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
            except json.JSONDecodeError:
                parsed = None
            if not isinstance(name, str) or not name or not isinstance(parsed, dict):
                raise BadRequestError(
                    "A function_call needs a name and arguments as a JSON object string.",
                    param=param,
                )
            call = {"function": {"name": name, "arguments": parsed}}
            call_id = item.get("call_id")
            if isinstance(call_id, str) and call_id:
                call["id"] = call_id
                names[call_id] = name
            previous = converted[-1] if converted else None
            if previous is not None and previous["role"] == "assistant" and not previous["content"]:
                previous.setdefault("tool_calls", []).append(call)
            else:
                converted.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            output, images = _text_and_images(item.get("output"), f"{param}.output")
            result: dict[str, Any] = {"role": "tool", "content": output}
            call_id = item.get("call_id")
            if isinstance(call_id, str) and call_id in names:
                # Ollama links a tool result to its call by the function's name.
                result["tool_name"] = names[call_id]
            if images:
                result["images"] = images
            converted.append(result)
        elif kind == "reasoning":
            continue  # earlier reasoning: the model does not need it back
        else:
            raise BadRequestError(
                f"Unsupported input item type {kind!r}: use message, function_call or "
                "function_call_output.",
                param=f"{param}.type",
            )
    return converted


def _tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> list[dict[str, Any]] | None:
    """Responses function tools (flat) as Ollama tools, narrowed by `tool_choice`."""
    wanted: str | None = None
    if isinstance(tool_choice, dict):
        wanted = tool_choice.get("name")
        if tool_choice.get("type") != "function" or not isinstance(wanted, str):
            raise BadRequestError(
                'tool_choice must be none, auto, required or {"type": "function", "name": ...}.',
                param="tool_choice",
            )
    elif tool_choice not in (None, "none", "auto", "required"):
        raise BadRequestError("tool_choice must be none, auto or required.", param="tool_choice")
    converted: list[dict[str, Any]] = []
    for index, tool in enumerate(tools or ()):
        if tool.get("type") != "function":
            raise BadRequestError(
                f"Only function tools are supported (not {tool.get('type')!r}): built-in tools "
                "need OpenAI's servers.",
                param=f"tools.{index}.type",
            )
        spec: dict[str, Any] = {"name": tool.get("name")}
        if tool.get("description"):
            spec["description"] = tool["description"]
        if tool.get("parameters") is not None:
            spec["parameters"] = tool["parameters"]
        function = {"type": "function", "function": spec}
        problem = tool_problem(function)
        if problem:
            raise BadRequestError(f"Invalid tool: {problem}.", param=f"tools.{index}")
        converted.append(function)
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


def _format(text: dict[str, Any] | None) -> str | dict[str, Any] | None:
    output_format = (text or {}).get("format")
    if not output_format:
        return None
    kind = output_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema" and isinstance(output_format.get("schema"), dict):
        return output_format["schema"]
    raise BadRequestError(
        "text.format must be {type: text}, {type: json_object} or "
        "{type: json_schema, name, schema}.",
        param="text.format",
    )


def _think(reasoning: dict[str, Any] | None) -> bool | str | None:
    effort = (reasoning or {}).get("effort")
    if effort is None:
        return None
    if effort not in _THINK:
        raise BadRequestError(
            "reasoning.effort must be none, minimal, low, medium or high.",
            param="reasoning.effort",
        )
    return _THINK[effort]


def chat_request_from(
    data: dict[str, Any], history: list[dict[str, Any]]
) -> tuple[ChatRequest, list[dict[str, Any]]]:
    """The backend request for a validated body after `history`, and this turn's messages."""
    turn = input_messages(data["input"], history)
    system = (
        [{"role": "system", "content": data["instructions"]}] if data.get("instructions") else []
    )
    request = ChatRequest(
        model=data["model"],
        messages=[*system, *history, *turn],
        params=GenerationParams(
            max_tokens=data.get("max_output_tokens"),
            temperature=data.get("temperature"),
            top_p=data.get("top_p"),
        ),
        format=_format(data.get("text")),
        tools=_tools(data.get("tools"), data.get("tool_choice")),
        think=_think(data.get("reasoning")),
    )
    return request, turn


# --- responses ------------------------------------------------------------------


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + completion_tokens,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [text_part(text)] if status == "completed" else [],
    }


def function_call_item(call: ToolCall, *, status: str = "completed") -> dict[str, Any]:
    return {
        "id": new_id("fc"),
        "type": "function_call",
        "status": status,
        "call_id": call.id or tool_call_id(),
        "name": call.name,
        "arguments": json.dumps(call.arguments) if status == "completed" else "",
    }


def reasoning_item(text: str) -> dict[str, Any]:
    return {
        "id": new_id("rs"),
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


class ResponseFrame:
    """The response object's constant fields, shared by the whole answer and the stream."""

    def __init__(self, *, data: dict[str, Any], model: str, response_id: str) -> None:
        self.id, self.model = response_id, model
        self.created_at = int(time.time())
        self.data = data

    def body(
        self,
        *,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        incomplete: bool = False,
    ) -> dict[str, Any]:
        data = self.data
        tool_choice = data.get("tool_choice")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": data.get("instructions"),
            "max_output_tokens": data.get("max_output_tokens"),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": data.get("previous_response_id"),
            "reasoning": {"effort": (data.get("reasoning") or {}).get("effort"), "summary": None},
            "store": data.get("store", True),
            "temperature": data.get("temperature"),
            "text": {"format": (data.get("text") or {}).get("format") or {"type": "text"}},
            "tool_choice": "auto" if tool_choice is None else tool_choice,
            "tools": data.get("tools") or [],
            "top_p": data.get("top_p"),
            "truncation": "disabled",
            "usage": usage,
            "user": data.get("user"),
            "metadata": data.get("metadata") or {},
        }


def response_object(result: ChatResult, frame: ResponseFrame, *, reasoning: bool) -> dict[str, Any]:
    """A whole `response` object."""
    output: list[dict[str, Any]] = []
    if reasoning and result.thinking:
        output.append(reasoning_item(result.thinking))
    if result.content or not result.tool_calls:
        output.append(message_item(new_id("msg"), result.content))
    output.extend(function_call_item(call) for call in result.tool_calls)
    incomplete = result.done_reason == "length"
    return frame.body(
        status="incomplete" if incomplete else "completed",
        output=output,
        usage=usage(result.prompt_tokens, result.completion_tokens),
        incomplete=incomplete,
    )


def assistant_message(output: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer's output items as one Ollama-shaped assistant message (for the store)."""
    text = "".join(
        part["text"]
        for item in output
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )
    message: dict[str, Any] = {"role": "assistant", "content": text}
    calls = [
        {
            "id": item["call_id"],
            "function": {"name": item["name"], "arguments": json.loads(item["arguments"])},
        }
        for item in output
        if item["type"] == "function_call"
    ]
    if calls:
        message["tool_calls"] = calls
    return message


def _sse(payload: dict[str, Any]) -> bytes:
    return (
        f"event: {payload['type']}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()
    )


class ResponseStreamEncoder(BaseEncoder[ChatChunk, bytes]):
    """The Responses stream: `response.created`, `response.in_progress`, then per output
    item `response.output_item.added`, its content events (`response.content_part.added`,
    `response.output_text.delta`s, `.done`s; or `response.function_call_arguments.delta`
    and `.done`), `response.output_item.done`, and last `response.completed` (or
    `response.incomplete`). A failure after the first event sends `response.failed`
    and an `error` event, which the openai SDK raises as `APIError`.

    `final` holds the finished response object once the last chunk is encoded.
    """

    def __init__(self, *, frame: ResponseFrame, reasoning: bool) -> None:
        self.frame, self.reasoning = frame, reasoning
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None  # the output item being streamed
        self.text: list[str] = []
        self.final: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return _sse(payload)

    def opening(self) -> list[bytes]:
        response = self.frame.body(status="in_progress", output=[])
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=response),
        ]

    def _close_open(self) -> list[bytes]:
        item = self.open
        if item is None:
            return []
        self.open = None
        index = len(self.output)
        events: list[bytes] = []
        if item["type"] == "message":
            text = "".join(self.text)
            self.text = []
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append(self._event("response.output_text.done", **where, text=text, logprobs=[]))
            events.append(self._event("response.content_part.done", **where, part=text_part(text)))
            item = message_item(item["id"], text)
        elif item["type"] == "reasoning":
            item = {**item, "content": [{"type": "reasoning_text", "text": "".join(self.text)}]}
            self.text = []
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        self.output.append(item)
        return events

    def _add(self, item: dict[str, Any]) -> list[bytes]:
        events = self._close_open()
        self.open = item
        events.append(
            self._event("response.output_item.added", output_index=len(self.output), item=item)
        )
        return events

    def piece(self, chunk: ChatChunk) -> bytes | None:
        events: list[bytes] = []
        index = len(self.output)
        if chunk.thinking and self.reasoning:
            if self.open is None or self.open["type"] != "reasoning":
                events += self._add({**reasoning_item(""), "content": []})
                index = len(self.output)
            self.text.append(chunk.thinking)
        if chunk.content:
            if self.open is None or self.open["type"] != "message":
                item = message_item(new_id("msg"), "", status="in_progress")
                events += self._add(item)
                index = len(self.output)
                events.append(
                    self._event(
                        "response.content_part.added",
                        item_id=item["id"],
                        output_index=index,
                        content_index=0,
                        part=text_part(""),
                    )
                )
            self.text.append(chunk.content)
            events.append(
                self._event(
                    "response.output_text.delta",
                    item_id=self.open["id"],  # type: ignore[index]
                    output_index=index,
                    content_index=0,
                    delta=chunk.content,
                    logprobs=[],
                )
            )
        for call in chunk.tool_calls:
            done = function_call_item(call)
            events += self._add({**done, "status": "in_progress", "arguments": ""})
            index = len(self.output)
            where = {"item_id": done["id"], "output_index": index}
            events.append(
                self._event(
                    "response.function_call_arguments.delta", **where, delta=done["arguments"]
                )
            )
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    **where,
                    name=done["name"],
                    arguments=done["arguments"],
                )
            )
            self.open = None
            events.append(self._event("response.output_item.done", output_index=index, item=done))
            self.output.append(done)
        return b"".join(events) or None

    def closing(self, chunk: ChatChunk) -> list[bytes]:
        events = [self.piece(chunk) or b""]
        if not self.output and self.open is None:  # an empty answer is an empty message
            item = message_item(new_id("msg"), "", status="in_progress")
            events += self._add(item)
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=0,
                    content_index=0,
                    part=text_part(""),
                )
            )
        events += self._close_open()
        incomplete = chunk.done_reason == "length"
        self.final = self.frame.body(
            status="incomplete" if incomplete else "completed",
            output=self.output,
            usage=usage(chunk.prompt_tokens, chunk.completion_tokens),
            incomplete=incomplete,
        )
        kind = "response.incomplete" if incomplete else "response.completed"
        events.append(self._event(kind, response=self.final))
        return [event for event in events if event]

    def failure(self, error: APIError) -> bytes:
        failed = self.frame.body(
            status="failed",
            output=self.output,
            error={"code": error.code, "message": error.message},
        )
        return self._event("response.failed", response=failed) + self._event(
            "error",
            code=error.code,
            message=error.message,
            param=error.param,
            # What the openai SDK raises (`APIError`) from a streamed event.
            error={"type": error.type, "code": error.code, "message": error.message},
        )
