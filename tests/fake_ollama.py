"""A faithful fake Ollama HTTP server for tests and benchmarks.

The fake speaks Ollama's native ``/api`` wire protocol (see
``/work/shared/spec/wire.md``, sections A, C and the checklist in E) over a real
loopback socket, so the gateway can talk to it through the real ``ollama``
client and cannot tell it is fake: same routes, status codes, error bodies,
NDJSON streaming (headers held back until the first line is ready), Go-style
JSON (compact, HTML-escaped), RFC 3339 nanosecond timestamps and integer
nanosecond metrics.

Typical use in a test::

    with FakeOllama(token_delay=0.01) as fake:
        client = ollama.Client(host=fake.url)
        client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
        assert fake.requests[-1].json["stream"] is False

Standalone (benchmarks, manual poking)::

    python -m tests.fake_ollama --host 127.0.0.1 --port 11434 --token-delay 0.05 --tokens 20

Behaviour is steered by plain attributes ("knobs") that a test may change at
any time from its own thread; every knob is read when a request reaches the
point where it matters. See :class:`FakeOllama` for the list.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import contextlib
import copy
import hashlib
import json
import math
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiohttp import web

__all__ = [
    "BUSY_MESSAGE",
    "MID_STREAM_ERROR_MESSAGE",
    "OOM_MESSAGE",
    "RUNNER_STOPPED_MESSAGE",
    "FakeModel",
    "FakeOllama",
    "RecordedRequest",
    "StreamRecord",
    "default_models",
    "fake_logprobs",
    "free_port",
    "main",
    "numbered_reply",
]

# --------------------------------------------------------------------------------------
# Wire constants
# --------------------------------------------------------------------------------------

DEFAULT_VERSION = "0.32.15"
BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
RUNNER_STOPPED_MESSAGE = (
    "model runner has unexpectedly stopped, this may be due to resource limitations "
    "or an internal error, check ollama server logs for details"
)
OOM_MESSAGE = "model requires more system memory (17.2 GiB) than is available (8.1 GiB)"
MID_STREAM_ERROR_MESSAGE = "an error was encountered while running the model"
GARBAGE_BODY = b"<html><body><h1>502 Bad Gateway</h1>this is not JSON</body></html>\n"

#: Tokens added to every prompt_eval_count (stands in for the chat template).
PROMPT_TOKEN_OVERHEAD = 10
DEFAULT_KEEP_ALIVE_S = 300.0
DEFAULT_NUM_CTX = 4096

_JSON_CT = "application/json; charset=utf-8"
_BARE_JSON_CT = "application/json"  # what Go's streamResponse uses for pre-stream errors
_NDJSON_CT = "application/x-ndjson"
_TEXT_CT = "text/plain; charset=utf-8"
_GIN_TEXT_CT = "text/plain"  # gin's 404/405 bodies

_DEFAULT_REGISTRY = "registry.ollama.ai"
_DEFAULT_NAMESPACE = "library"
_FOREVER = float("inf")

Outcome = Literal["completed", "client_disconnected", "error_line", "aborted"]

# --------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeModel:
    """One model "on disk" in the fake.

    ``name`` is the stored name (``llama3.2`` is stored as ``llama3.2:latest``).
    ``size`` is the on-disk size in bytes; ``context_length`` and
    ``embedding_length`` are the GGUF metadata reported by ``/api/show``.
    """

    name: str
    family: str
    parameter_size: str
    quantization_level: str
    size: int
    capabilities: tuple[str, ...]
    modified_at: datetime
    parameter_count: int
    context_length: int
    embedding_length: int
    template: str = "{{ .Prompt }}"
    parameters: str = ""
    license: str = ""
    families: tuple[str, ...] | None = None
    format: str = "gguf"

    @property
    def digest(self) -> str:
        """Manifest digest: 64 hex chars, derived from the name."""
        return hashlib.sha256(self.name.lower().encode()).hexdigest()

    @property
    def display_name(self) -> str:
        """Short display name (``llama3.2:latest``, ``hf.co/org/name:Q4_K_M``)."""
        parsed = _parse_model_name(self.name)
        if parsed is None:
            raise ValueError(f"invalid model name {self.name!r}")
        return _display_shortest(parsed)

    @property
    def qualified_name(self) -> str:
        """Fully qualified name (``registry.ollama.ai/library/llama3.2:latest``)."""
        parsed = _parse_model_name(self.name)
        if parsed is None:
            raise ValueError(f"invalid model name {self.name!r}")
        host, namespace, model, tag = parsed
        return f"{host}/{namespace}/{model}:{tag}"

    def details(self) -> dict[str, Any]:
        """The ``ModelDetails`` object used by /api/tags, /api/show and /api/ps."""
        return {
            "parent_model": "",
            "format": self.format,
            "family": self.family,
            "families": list(self.families) if self.families is not None else [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the fake received it."""

    method: str
    path: str
    #: Header names lower-cased (a repeated header keeps its last value).
    headers: dict[str, str]
    #: The decoded JSON body, or None when there was no body or it was not valid JSON.
    json: Any
    #: time.monotonic() when the request was received.
    received_at: float


@dataclass
class StreamRecord:
    """Lifecycle of one generation (chat or generate, streamed or not).

    Created once a generation request passed validation and scheduling (i.e.
    right before the pre-header delays); fields are filled in on the server
    thread and are final once ``outcome`` is set.
    """

    path: str
    #: The model string as the request sent it.
    model: str
    #: False for ``"stream": false`` requests (one JSON body instead of NDJSON).
    stream: bool
    #: The request that started it (None when the fake runs with ``record=False``).
    request: RecordedRequest | None
    #: time.monotonic() when generation started (before first_token_delay / stall).
    started_at: float
    #: time.monotonic() when the first body bytes were written, if ever.
    first_byte_at: float | None = None
    #: time.monotonic() when the stream ended (any outcome).
    ended_at: float | None = None
    #: How it ended: ``completed`` (done line / body written), ``client_disconnected``
    #: (the client went away first; generation stopped at once), ``error_line``
    #: (``error_after_tokens`` fired) or ``aborted`` (``disconnect_after_tokens`` fired,
    #: or the fake was stopped mid-stream).
    outcome: Outcome | None = None
    #: Content/thinking/tool-call lines written before the end (final line excluded).
    tokens_sent: int = 0


# --------------------------------------------------------------------------------------
# Default model catalogue
# --------------------------------------------------------------------------------------

_CHATML_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
_LLAMA3_TEMPLATE = (
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)


def _go_params(*pairs: tuple[str, Any]) -> str:
    """Render Modelfile parameters the way /api/show does (``%-30s %#v``)."""
    return "\n".join(
        f"{key:<30} {_go_quote(val) if isinstance(val, str) else val}" for key, val in pairs
    )


def default_models() -> list[FakeModel]:
    """The models the fake serves unless told otherwise."""
    utc = UTC
    return [
        FakeModel(
            name="qwen2.5:14b",
            family="qwen2",
            parameter_size="14.8B",
            quantization_level="Q4_K_M",
            size=9123456789,
            capabilities=("completion", "tools"),
            modified_at=datetime(2025, 5, 11, 8, 30, 12, 345678, tzinfo=utc),
            parameter_count=14770033664,
            context_length=32768,
            embedding_length=5120,
            template=_CHATML_TEMPLATE,
            parameters=_go_params(("stop", "<|im_start|>"), ("stop", "<|im_end|>")),
            license="Apache License 2.0",
        ),
        FakeModel(
            name="llama3.2:latest",
            family="llama",
            parameter_size="3.2B",
            quantization_level="Q4_K_M",
            size=2019393189,
            capabilities=("completion", "tools", "vision"),
            modified_at=datetime(2025, 3, 3, 17, 21, 21, 196249, tzinfo=utc),
            parameter_count=3212749888,
            context_length=131072,
            embedding_length=3072,
            template=_LLAMA3_TEMPLATE,
            parameters=_go_params(
                ("stop", "<|start_header_id|>"),
                ("stop", "<|end_header_id|>"),
                ("stop", "<|eot_id|>"),
            ),
            license="LLAMA 3.2 COMMUNITY LICENSE AGREEMENT",
        ),
        FakeModel(
            name="mxbai-embed-large:latest",
            family="bert",
            parameter_size="334M",
            quantization_level="F16",
            size=669615493,
            capabilities=("embedding",),
            modified_at=datetime(2024, 12, 1, 10, 0, 5, 5, tzinfo=utc),
            parameter_count=334090240,
            context_length=512,
            embedding_length=1024,
            parameters=_go_params(("num_ctx", 512)),
            license="Apache License 2.0",
        ),
        FakeModel(
            name="hf.co/org/name:Q4_K_M",
            family="llama",
            parameter_size="8.0B",
            quantization_level="Q4_K_M",
            size=4920739231,
            capabilities=("completion",),
            modified_at=datetime(2025, 7, 2, 14, 5, 59, 900001, tzinfo=utc),
            parameter_count=8030261248,
            context_length=131072,
            embedding_length=4096,
            template=_LLAMA3_TEMPLATE,
            parameters=_go_params(("stop", "<|eot_id|>")),
        ),
        FakeModel(
            name="qwen3:8b",
            family="qwen3",
            parameter_size="8.2B",
            quantization_level="Q4_K_M",
            size=5225388164,
            capabilities=("completion", "tools", "thinking"),
            modified_at=datetime(2025, 8, 20, 9, 15, 42, 123456, tzinfo=utc),
            parameter_count=8190735360,
            context_length=40960,
            embedding_length=4096,
            template=_CHATML_TEMPLATE,
            parameters=_go_params(
                ("repeat_penalty", 1),
                ("stop", "<|im_start|>"),
                ("stop", "<|im_end|>"),
                ("temperature", 0.6),
                ("top_k", 20),
                ("top_p", 0.95),
            ),
            license="Apache License 2.0",
        ),
    ]


_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua."
).split()


def numbered_reply(n: int) -> list[str]:
    """A deterministic reply of exactly ``n`` word tokens (for ``reply=`` / ``--tokens``)."""
    return [("" if i == 0 else " ") + _LOREM[i % len(_LOREM)] for i in range(n)]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a loopback TCP port that nothing listens on (connection-refused tests).

    The port is bound and released immediately, so connecting to it is refused
    (barring a tiny race with another process grabbing it).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------
# Go-compatibility helpers (names, JSON, durations, time)
# --------------------------------------------------------------------------------------

_NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}\Z")
_HOST_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}\Z")


def _parse_model_name(name: str) -> tuple[str, str, str, str] | None:
    """Split ``[host/][namespace/]model[:tag]`` with Ollama's defaults, or None if invalid."""
    parts = name.split("/")
    if not 1 <= len(parts) <= 3:
        return None
    model, sep, tag = parts[-1].partition(":")
    if not sep:
        tag = "latest"
    namespace = parts[-2] if len(parts) >= 2 else _DEFAULT_NAMESPACE
    host = parts[0] if len(parts) == 3 else _DEFAULT_REGISTRY
    if not (_NAME_PART.match(model) and _NAME_PART.match(tag) and _NAME_PART.match(namespace)):
        return None
    if not _HOST_PART.match(host):
        return None
    return host, namespace, model, tag


def _display_shortest(parsed: tuple[str, str, str, str]) -> str:
    host, namespace, model, tag = parsed
    if host.lower() != _DEFAULT_REGISTRY:
        return f"{host}/{namespace}/{model}:{tag}"
    if namespace.lower() != _DEFAULT_NAMESPACE:
        return f"{namespace}/{model}:{tag}"
    return f"{model}:{tag}"


def _model_key(parsed: tuple[str, str, str, str]) -> str:
    host, namespace, model, tag = parsed
    return f"{host}/{namespace}/{model}:{tag}".lower()


def _go_quote(text: str) -> str:
    """Approximate Go's %q / strconv.Quote."""
    return json.dumps(text, ensure_ascii=False)


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_HTML_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def _go_json(obj: Any) -> bytes:
    """Serialise like Go's json.Marshal: compact, UTF-8, HTML characters escaped."""
    text = _ENCODE(obj)
    for raw, escaped in _HTML_ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return text.encode()


def _rfc3339_now() -> str:
    """UTC now in Go's RFC 3339 nano format (trailing zeros trimmed)."""
    ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def _format_dt(value: datetime) -> str:
    """Format an aware datetime the way Go marshals time.Time."""
    text = value.isoformat(timespec="microseconds")
    stamp, offset = text[:26], text[26:]
    stamp = stamp.rstrip("0").rstrip(".")
    return stamp + ("Z" if offset in ("+00:00", "") else offset)


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def _parse_go_duration(text: str) -> float:
    """Go's time.ParseDuration, returning seconds; raises ValueError with Go's message."""
    orig = _go_quote(text)
    rest, negative = text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"time: invalid duration {orig}")
    total = 0.0
    while rest:
        match = _DURATION_PART.match(rest)
        assert match is not None  # the pattern can match the empty string
        whole, frac, unit = match.groups()
        if not whole and not frac:
            raise ValueError(f"time: invalid duration {orig}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {orig}")
        if unit not in _DURATION_UNITS:
            raise ValueError(f"time: unknown unit {_go_quote(unit)} in duration {orig}")
        total += float(f"{whole or 0}.{frac or 0}") * _DURATION_UNITS[unit]
        rest = rest[match.end() :]
    return -total if negative else total


def _json_kind(value: Any) -> str:
    """The JSON kind word Go uses in unmarshal errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_char(ch: str) -> str:
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    return "'" + json.dumps(ch, ensure_ascii=False)[1:-1] + "'"


def _innermost_container(doc: str, pos: int) -> str:
    """'{' or '[' — the container that is open at ``pos`` (error path only)."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in doc[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else "{"


def _go_syntax_error(exc: json.JSONDecodeError) -> str:
    """Translate a Python JSON syntax error into Go's encoding/json wording."""
    doc, pos, msg = exc.doc, exc.pos, exc.msg
    if pos >= len(doc) or msg.startswith("Unterminated string"):
        return "unexpected EOF"
    if msg.startswith("Expecting property name"):
        where = "looking for beginning of object key string"
    elif msg.startswith("Expecting ':'"):
        where = "after object key"
    elif msg.startswith("Expecting ','"):
        where = (
            "after object key:value pair"
            if _innermost_container(doc, pos) == "{"
            else "after array element"
        )
    elif msg.startswith("Invalid control character"):
        where = "in string literal"
    elif "escape" in msg:
        where = "in string escape code"
    else:
        where = "looking for beginning of value"
    return f"invalid character {_go_char(doc[pos])} {where}"


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _base64_error(data: str) -> str | None:
    """None if Go's StdEncoding accepts ``data``, else Go's CorruptInputError text."""
    compact = data.replace("\r", "").replace("\n", "")
    try:
        base64.b64decode(compact, validate=True)
        return None
    except (binascii.Error, ValueError):
        pass
    for index, ch in enumerate(data):
        if ch not in _B64_CHARS and ch not in "\r\n":
            return f"illegal base64 data at input byte {index}"
    pad = compact.find("=")
    if 0 <= pad < len(compact) - 2 or (pad >= 0 and compact[pad:] not in ("=", "==")):
        return f"illegal base64 data at input byte {pad}"
    return f"illegal base64 data at input byte {len(compact) - len(compact) % 4}"


# --------------------------------------------------------------------------------------
# Request validation (mirrors Go struct binding)
# --------------------------------------------------------------------------------------

# field -> (Go type as printed in errors, check kind)
_FieldSpec = dict[str, tuple[str, str]]

_MESSAGE_FIELDS: _FieldSpec = {
    "role": ("string", "string"),
    "content": ("string", "string"),
    "thinking": ("string", "string"),
    "images": ("[]api.ImageData", "images"),
    "tool_calls": ("[]api.ToolCall", "array"),
    "tool_name": ("string", "string"),
    "tool_call_id": ("string", "string"),
}
_COMMON_FIELDS: _FieldSpec = {
    "model": ("string", "string"),
    "keep_alive": ("api.Duration", "duration"),
    "options": ("map[string]interface {}", "object"),
}
_INFERENCE_FIELDS: _FieldSpec = {
    **_COMMON_FIELDS,
    "stream": ("bool", "bool"),
    "format": ("json.RawMessage", "any"),
    "think": ("api.ThinkValue", "think"),
    "truncate": ("bool", "bool"),
    "shift": ("bool", "bool"),
    "logprobs": ("bool", "bool"),
    "top_logprobs": ("int", "int"),
}
_CHAT_FIELDS: _FieldSpec = {
    **_INFERENCE_FIELDS,
    "messages": ("[]api.Message", "messages"),
    "tools": ("api.Tools", "array"),
}
_GENERATE_FIELDS: _FieldSpec = {
    **_INFERENCE_FIELDS,
    "prompt": ("string", "string"),
    "suffix": ("string", "string"),
    "system": ("string", "string"),
    "template": ("string", "string"),
    "context": ("[]int", "array"),
    "raw": ("bool", "bool"),
    "images": ("[]api.ImageData", "images"),
}
_EMBED_FIELDS: _FieldSpec = {
    **_COMMON_FIELDS,
    "input": ("interface {}", "any"),
    "truncate": ("bool", "bool"),
    "dimensions": ("int", "int"),
}
_EMBEDDINGS_FIELDS: _FieldSpec = {**_COMMON_FIELDS, "prompt": ("string", "string")}
_SHOW_FIELDS: _FieldSpec = {
    "model": ("string", "string"),
    "name": ("string", "string"),
    "system": ("string", "string"),
    "template": ("string", "string"),
    "verbose": ("bool", "bool"),
    "options": ("map[string]interface {}", "object"),
}

_THINK_LEVELS = ("high", "medium", "low", "max")
_INT_OPTIONS = frozenset(
    "num_keep seed num_predict top_k repeat_last_n mirostat num_ctx num_batch num_gpu main_gpu "
    "num_thread".split()
)
_FLOAT_OPTIONS = frozenset(
    "top_p min_p typical_p temperature repeat_penalty presence_penalty frequency_penalty "
    "mirostat_tau mirostat_eta".split()
)
_BOOL_OPTIONS = frozenset(
    "numa use_mmap penalize_newline low_vram f16_kv vocab_only use_mlock".split()
)


class _ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str, content_type: str = _JSON_CT) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.content_type = content_type


def _type_error(kind: str, struct_name: str, path: str, go_type: str) -> _ApiError:
    return _ApiError(
        400,
        f"json: cannot unmarshal {kind} into Go struct field {struct_name}.{path} "
        f"of type {go_type}",
    )


def _check_value(value: Any, kind: str, go_type: str, struct_name: str, path: str) -> None:
    """Raise the Go binding error if ``value`` cannot be decoded into the field."""
    if value is None or kind == "any":
        return
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        if isinstance(value, float) and not isinstance(value, bool) and not value.is_integer():
            raise _type_error(f"number {value!r}", struct_name, path, go_type)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind == "object":
        ok = isinstance(value, dict)
    elif kind in ("array", "images", "messages"):
        ok = isinstance(value, list)
    elif kind == "duration":
        _check_duration(value)
        return
    elif kind == "think":
        _check_think_value(value)
        return
    else:  # pragma: no cover - spec tables only use the kinds above
        raise AssertionError(kind)
    if not ok:
        raise _type_error(_json_kind(value), struct_name, path, go_type)
    if kind == "images":
        for item in value:
            if not isinstance(item, str):
                raise _type_error(_json_kind(item), struct_name, path, "api.ImageData")
            error = _base64_error(item)
            if error:
                raise _ApiError(400, error)
    elif kind == "messages":
        for item in value:
            if item is None:
                continue
            if not isinstance(item, dict):
                raise _type_error(_json_kind(item), struct_name, path, "api.Message")
            for key, (sub_type, sub_kind) in _MESSAGE_FIELDS.items():
                if key in item:
                    _check_value(item[key], sub_kind, sub_type, "Message", f"{path}.{key}")


def _check_duration(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _ApiError(400, f"Unsupported type: '{_json_kind(value)}'")
    if isinstance(value, str):
        try:
            _parse_go_duration(value)
        except ValueError as exc:
            raise _ApiError(400, str(exc)) from None


def _check_think_value(value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, str):
        if value not in _THINK_LEVELS:
            raise _ApiError(
                400,
                f"invalid think value: {_go_quote(value)} "
                '(must be "high", "medium", "low", "max", true, or false)',
            )
        return
    raise _ApiError(
        400, 'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'
    )


def _keep_alive_seconds(value: Any) -> float:
    """Seconds to keep the model loaded (inf = forever); the request was validated already."""
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    seconds = _parse_go_duration(value) if isinstance(value, str) else float(value)
    return _FOREVER if seconds < 0 else seconds


def _check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate known option types like api.Options.FromMap (errors are 500s).

    Unknown keys are ignored, as Ollama does."""
    if not options:
        return {}
    for key, val in options.items():
        if val is None:
            continue
        if key in _INT_OPTIONS and (isinstance(val, bool) or not isinstance(val, (int, float))):
            raise _ApiError(500, f"option {_go_quote(key)} must be of type integer")
        if key in _FLOAT_OPTIONS and (isinstance(val, bool) or not isinstance(val, (int, float))):
            raise _ApiError(500, f"option {_go_quote(key)} must be of type float32")
        if key in _BOOL_OPTIONS and not isinstance(val, bool):
            raise _ApiError(500, f"option {_go_quote(key)} must be of type boolean")
        if key == "stop":
            if not isinstance(val, list):
                raise _ApiError(500, f"option {_go_quote(key)} must be of type array")
            if not all(isinstance(item, str) for item in val):
                raise _ApiError(500, f"option {_go_quote(key)} must be of an array of strings")
    return dict(options)


# --------------------------------------------------------------------------------------
# Deterministic "model" output
# --------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\s*\S+|\s+")
_PLACE_RE = re.compile(r"\bin\s+([A-Za-z][\w\- ]*?)\s*(?:[?.!,;]|$)")
_DEFAULT_THINKING = "Okay, the user wants an answer. I will reply briefly and politely."
_DEFAULT_GREETING = "Hello! How can I help you today?"


def _tokenize(text: str) -> list[str]:
    """Split text into word tokens that keep their leading whitespace (join == text)."""
    return _TOKEN_RE.findall(text)


def _words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def _schema_value(schema: Any, text: str, depth: int = 0) -> Any:
    """A value that satisfies a (simple) JSON schema."""
    if not isinstance(schema, dict) or depth > 8:
        return text
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        if not isinstance(props, dict) or not props:
            return {"answer": text}
        return {key: _schema_value(sub, text, depth + 1) for key, sub in props.items()}
    if kind == "array":
        items = schema.get("items")
        return [_schema_value(items, text, depth + 1)] if isinstance(items, dict) else []
    scalars: dict[Any, Any] = {"integer": 42, "number": 0.5, "boolean": True, "null": None}
    return scalars.get(kind, text)


def _argument_value(name: str, spec: Any, text: str) -> Any:
    spec = spec if isinstance(spec, dict) else {}
    if spec.get("enum"):
        return spec["enum"][0]
    kind = spec.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "string":
        if any(word in name.lower() for word in ("location", "city", "place", "where")):
            match = _PLACE_RE.search(text)
            return match.group(1) if match else "Paris"
        return text
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(kind, text)


def _tool_arguments(tool: Mapping[str, Any], text: str) -> dict[str, Any]:
    function = tool.get("function") or {}
    params = function.get("parameters") or {}
    props = params.get("properties") or {}
    required = params.get("required") or list(props)
    return {name: _argument_value(name, props.get(name), text) for name in required}


def _apply_stop(tokens: list[str], stops: Sequence[str]) -> list[str]:
    """Cut the token list right before the earliest occurrence of any stop string."""
    text = "".join(tokens)
    cuts = [index for stop in stops if stop and (index := text.find(stop)) >= 0]
    if not cuts:
        return tokens
    cut, kept, pos = min(cuts), [], 0
    for token in tokens:
        if pos + len(token) <= cut:
            kept.append(token)
            pos += len(token)
            continue
        if cut > pos:
            kept.append(token[: cut - pos])
        break
    return kept


def _metrics(
    t0: int, t_loaded: int, t_first: int, t_end: int, prompt_count: int, eval_count: int
) -> dict[str, int]:
    """The six Go Metrics fields (omitempty: zero counts are dropped, durations are >= 1 ns)."""
    metrics = {"total_duration": max(1, t_end - t0), "load_duration": max(1, t_loaded - t0)}
    if prompt_count:
        metrics["prompt_eval_count"] = prompt_count
    metrics["prompt_eval_duration"] = max(1, t_first - t_loaded)
    if eval_count:
        metrics["eval_count"] = eval_count
    metrics["eval_duration"] = max(1, t_end - t_first)
    return metrics


@dataclass
class _Plan:
    """What a generation will emit: ("thinking"|"content", str) or ("tool_calls", list) events."""

    events: list[tuple[str, Any]]
    done_reason: str
    prompt_eval_count: int
    eval_count: int
    # `logprobs` asked for: how many alternatives per token (`top_logprobs`), else None.
    top_logprobs: int | None = None


@dataclass
class _Call:
    """Per-request state handed to endpoint handlers."""

    request: web.Request
    body: Any
    body_error: str | None
    t0_ns: int
    recorded: RecordedRequest | None


@dataclass
class _Loaded:
    model: FakeModel
    expires_at: float  # time.time() seconds, inf = forever
    num_ctx: int
    refs: int = 0


def _parse_request(call: _Call, struct_name: str, fields: _FieldSpec) -> dict[str, Any]:
    """Bind the JSON body like gin's ShouldBindJSON; raises _ApiError(400) on failure."""
    if call.body_error is not None:
        raise _ApiError(400, call.body_error)
    body = call.body
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise _ApiError(
            400,
            f"json: cannot unmarshal {_json_kind(body)} into Go value of type api.{struct_name}",
        )
    for key, (go_type, kind) in fields.items():
        if key in body:
            _check_value(body[key], kind, go_type, struct_name, key)
    return body


def _check_top_logprobs(req: Mapping[str, Any]) -> None:
    top = req.get("top_logprobs") or 0
    if top < 0 or top > 20:
        raise _ApiError(400, "top_logprobs must be between 0 and 20")


def _wanted_logprobs(req: Mapping[str, Any]) -> int | None:
    """How many alternatives per token, when the request asked for logprobs; else None."""
    return int(req.get("top_logprobs") or 0) if req.get("logprobs") else None


def _token_logprob(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def fake_logprobs(tokens: Sequence[str], top: int) -> list[dict[str, Any]]:
    """Ollama's `logprobs` for generated `tokens`, deterministic per token text.

    The chosen token's log probability is in [-1.0, -0.2] (a hash of its
    text); with `top` > 0 it leads its alternatives (`<token>#1`, ...), each
    e^-2 times less likely than the one before, so their probabilities sum
    below 1 as a real distribution's would.
    """
    entries = []
    for token in tokens:
        digest = hashlib.sha1(token.encode("utf-8")).digest()
        chosen = -0.2 - (digest[0] / 255) * 0.8
        entry = _token_logprob(token, round(chosen, 6))
        if top:
            entry["top_logprobs"] = [entry.copy()] + [
                _token_logprob(f"{token}#{rank}", round(chosen - 2.0 * rank, 6))
                for rank in range(1, top)
            ]
        entries.append(entry)
    return entries


def _format_error(fmt: Any) -> str | None:
    """The runner's error for an invalid ``format``; None when it is absent, "", "json" or
    a schema object."""
    if fmt is None or fmt == "" or fmt == "json" or isinstance(fmt, dict):
        return None
    raw = _ENCODE(fmt)
    return f'invalid format: {_go_quote(raw)}; expected "json" or a valid JSON Schema object'


def _json_response(status: int, obj: Any, content_type: str = _JSON_CT) -> web.Response:
    return web.Response(status=status, body=_go_json(obj), headers={"Content-Type": content_type})


def _error_response(error: _ApiError) -> web.Response:
    return _json_response(error.status, {"error": error.message}, error.content_type)


def _decode_body(raw: bytes) -> tuple[Any, str | None]:
    """Decode a request body like Go's json.Decoder (first value only; trailing data ignored)."""
    text = raw.decode("utf-8", "replace").lstrip(" \t\r\n")
    if not text:
        return None, "missing request body"
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as exc:
        return None, _go_syntax_error(exc)
    return value, None


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------

_KNOBS = (
    "token_delay",
    "first_token_delay",
    "stall",
    "busy",
    "max_concurrent",
    "max_queue",
    "fail_before_first_token",
    "oom",
    "error_after_tokens",
    "disconnect_after_tokens",
    "garbage",
    "reply",
    "thinking_reply",
    "tool_call",
    "embedding_dim",
    "embed_call_delay",
    "embed_input_delay",
    "version",
)

_INFERENCE_PATHS = frozenset({"/api/chat", "/api/generate", "/api/embed", "/api/embeddings"})


class FakeOllama:
    """A fake Ollama server on its own event loop in a daemon thread.

    Construct, then ``start()`` (or use as a context manager); ``url`` is the
    base URL for ``ollama.Client(host=...)``. ``stop()`` closes the listening
    socket and all connections; ``start()`` again rebinds the same port.

    Knobs (plain attributes, settable at any time from any thread; ``reset()``
    restores the values given to the constructor):

    * ``token_delay`` (float s, default 0): delay between streamed lines (and before
      the final line). Non-stream replies take as long as the stream would.
    * ``first_token_delay`` (float s, default 0): delay before the first line, i.e.
      before any response header is sent (load + prompt time); embed and embeddings
      requests also wait this long before answering.
    * ``stall`` (float s | None): extra sleep before headers — on the inference
      endpoints (chat, generate, embed, embeddings) after scheduling, on every other
      ``/api`` endpoint before anything else.
    * ``busy`` (bool): inference endpoints answer 503 :data:`BUSY_MESSAGE` (after
      request validation and model lookup, as the real scheduler does).
    * ``max_concurrent`` (int | None) and ``max_queue`` (int, default 512): real
      queueing: at most ``max_concurrent`` inference requests run, up to
      ``max_queue`` more wait, anything beyond gets the 503.
    * ``fail_before_first_token`` (bool): 500 :data:`RUNNER_STOPPED_MESSAGE`.
    * ``oom`` (bool): 500 :data:`OOM_MESSAGE`.
    * ``error_after_tokens`` (int | None): after N lines write
      ``{"error":"an error was encountered while running the model"}\\n`` and end the
      200 response cleanly (if the reply has fewer lines it fires instead of the final
      line; N=0 or non-stream requests get a 500 status instead, as the real server does).
    * ``disconnect_after_tokens`` (int | None): after N lines abort the TCP connection
      without the terminating chunk (same N rules as above).
    * ``garbage`` (bool): every ``/api`` endpoint answers 200 with a non-JSON body.
    * ``reply`` (list[str] | None): content tokens for chat/generate; None derives a
      deterministic reply (``"You said: <last user message>"`` split into words).
    * ``thinking_reply`` (list[str] | None): thinking tokens for thinking models.
    * ``tool_call`` (dict | list[dict] | None): ``{"name": ..., "arguments": {...}}``
      forcing a tool call when the request has ``tools`` and ends with a user
      message. Without it, a user message containing "weather" triggers a call to the
      first tool named like "weather" (else the first tool).
    * ``embedding_dim`` (int, default 8): length of embedding vectors.
    * ``embed_call_delay`` and ``embed_input_delay`` (float s, default 0): an
      ``/api/embed`` call holds its slot ``embed_call_delay + embed_input_delay * inputs``
      (a GPU's fixed cost per call and its cost per input).
    * ``hold_embeds()`` / ``release_embeds()``: ``/api/embed`` calls wait (holding their
      slot) until released, so a test can line up requests behind them.

    Counters (always kept, even with ``record=False``; cleared by ``reset()``):
    ``embed_calls`` (``/api/embed`` calls that computed vectors), ``embed_inputs`` (their
    inputs) and ``embed_tokens`` (the ``prompt_eval_count`` they reported).
    * ``version`` (str): reported by /api/version.
    * ``models`` (list[FakeModel]): the catalogue (see :func:`default_models`).

    Set ``record=False`` (constructor) to skip all recording, e.g. in benchmarks.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: Sequence[FakeModel] | None = None,
        record: bool = True,
        token_delay: float = 0.0,
        first_token_delay: float = 0.0,
        stall: float | None = None,
        busy: bool = False,
        max_concurrent: int | None = None,
        max_queue: int = 512,
        fail_before_first_token: bool = False,
        oom: bool = False,
        error_after_tokens: int | None = None,
        disconnect_after_tokens: int | None = None,
        garbage: bool = False,
        reply: list[str] | None = None,
        thinking_reply: list[str] | None = None,
        tool_call: dict[str, Any] | list[dict[str, Any]] | None = None,
        embedding_dim: int = 8,
        embed_call_delay: float = 0.0,
        embed_input_delay: float = 0.0,
        version: str = DEFAULT_VERSION,
    ) -> None:
        self.host = host
        self.port = port
        self.record = record
        self.token_delay = token_delay
        self.first_token_delay = first_token_delay
        self.stall = stall
        self.busy = busy
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.fail_before_first_token = fail_before_first_token
        self.oom = oom
        self.error_after_tokens = error_after_tokens
        self.disconnect_after_tokens = disconnect_after_tokens
        self.garbage = garbage
        self.reply = reply
        self.thinking_reply = thinking_reply
        self.tool_call = tool_call
        self.embedding_dim = embedding_dim
        self.embed_call_delay = embed_call_delay
        self.embed_input_delay = embed_input_delay
        self.version = version
        self.embed_calls = 0
        self.embed_inputs = 0
        self.embed_tokens = 0
        self._embed_gate: asyncio.Event | None = None
        self._baseline = {name: copy.deepcopy(getattr(self, name)) for name in _KNOBS}
        self._baseline_models = list(models) if models is not None else default_models()
        self._index: dict[str, FakeModel] = {}
        self.models = list(self._baseline_models)

        self._cond = threading.Condition(threading.RLock())
        self._requests: list[RecordedRequest] = []
        self._streams: list[StreamRecord] = []
        self._ended: list[StreamRecord] = []
        self._ended_cursor = 0
        self._generation = 0

        self._loaded: dict[str, _Loaded] = {}
        self._active = 0
        # The most inference requests it ran at once (since the last reset).
        self.peak_in_flight = 0
        # Seconds with at least one inference request running (the slot busy),
        # and when the current busy spell began (benchmarks read both).
        self.busy_seconds = 0.0
        self._busy_since: float | None = None
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._in_flight: dict[asyncio.Task[Any], web.Request] = {}
        self._call_counter = 0
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._routes: dict[str, dict[str, Callable[[_Call], Awaitable[web.StreamResponse]]]] = {
            "/": {"GET": self._root, "HEAD": self._root},
            "/api/version": {"GET": self._version, "HEAD": self._version},
            "/api/tags": {"GET": self._tags, "HEAD": self._tags},
            "/api/show": {"POST": self._show},
            "/api/ps": {"GET": self._ps},
            "/api/chat": {"POST": self._chat},
            "/api/generate": {"POST": self._generate},
            "/api/embed": {"POST": self._embed},
            "/api/embeddings": {"POST": self._embeddings},
            # Not Ollama's: the fake's own counters, for benchmarks in another process.
            "/_fake/stats": {"GET": self._stats},
        }

    # ----------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (valid once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> FakeOllama:
        """Bind (a free port when ``port=0``), start serving and return once listening."""
        if self._thread is not None:
            raise RuntimeError("FakeOllama is already running")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        ready = threading.Event()
        errors: list[BaseException] = []
        self._stopping = False
        self._thread = threading.Thread(
            target=self._serve,
            args=(sock, ready, errors),
            name=f"fake-ollama:{self.port}",
            daemon=True,
        )
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            self._thread = None
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection (in-flight streams end as ``aborted``)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self._stopping = True
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = None

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(
        self, sock: socket.socket, ready: threading.Event, errors: list[BaseException]
    ) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application(client_max_size=1 << 31)
        app.on_response_prepare.append(_strip_server_header)
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.SockSite(runner, sock, backlog=1024).start())
        except BaseException as exc:  # surfaced to start()
            errors.append(exc)
            sock.close()
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    # ----------------------------------------------------------------- knobs & state

    @property
    def models(self) -> list[FakeModel]:
        """The model catalogue (assign a new list to replace it)."""
        return list(self._index.values())

    @models.setter
    def models(self, models: Sequence[FakeModel]) -> None:
        index: dict[str, FakeModel] = {}
        for model in models:
            parsed = _parse_model_name(model.name)
            if parsed is None:
                raise ValueError(f"invalid model name {model.name!r}")
            index[_model_key(parsed)] = model
        self._index = index

    def add_model(self, model: FakeModel) -> None:
        """Add (or replace) one model."""
        self.models = [*self.models, model]

    def remove_model(self, name: str) -> None:
        """Remove a model by any name that resolves to it (KeyError if unknown)."""
        parsed = _parse_model_name(name)
        key = _model_key(parsed) if parsed else name
        index = dict(self._index)
        del index[key]
        self._index = index

    def reset(self) -> None:
        """Give the next test a clean slate.

        Aborts the connections of requests still being handled (a previous test's
        leftovers, which would otherwise keep holding scheduler slots) and waits for them
        to finish, then restores every knob and the model list to their constructor
        values and clears all recordings and loaded-model (``/api/ps``) state. Call it
        from any thread except the server's own."""
        loop = self._loop
        if self._thread is not None and loop is not None:
            asyncio.run_coroutine_threadsafe(self._abort_in_flight(), loop).result()
        with self._cond:
            for name, value in self._baseline.items():
                setattr(self, name, copy.deepcopy(value))
            self.models = list(self._baseline_models)
            self._requests.clear()
            self._streams.clear()
            self._ended.clear()
            self._ended_cursor = 0
            self._generation += 1
            self._loaded.clear()
            self.peak_in_flight = 0
            self.embed_calls = self.embed_inputs = self.embed_tokens = 0
            self._cond.notify_all()
        self.release_embeds()

    async def _abort_in_flight(self) -> None:
        tasks = list(self._in_flight)
        for request in self._in_flight.values():
            if request.transport is not None:
                request.transport.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    def hold_embeds(self) -> None:
        """From now on, ``/api/embed`` calls wait (in their slot) for ``release_embeds()``."""
        if self._embed_gate is None:
            self._embed_gate = asyncio.Event()

    def release_embeds(self) -> None:
        """Let every held ``/api/embed`` call go on (and later ones run at once)."""
        gate, self._embed_gate = self._embed_gate, None
        loop = self._loop
        if gate is not None and loop is not None:
            loop.call_soon_threadsafe(gate.set)

    @property
    def in_flight(self) -> int:
        """Inference requests currently holding a scheduler slot."""
        return self._active

    @property
    def queued(self) -> int:
        """Inference requests waiting for a slot (``max_concurrent`` reached)."""
        return len(self._waiters)

    # ----------------------------------------------------------------- recordings

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every recorded request, oldest first."""
        with self._cond:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Snapshot of the recorded requests for one path (e.g. ``/api/chat``)."""
        with self._cond:
            return [r for r in self._requests if r.path == path]

    @property
    def streams(self) -> list[StreamRecord]:
        """Snapshot of every generation record (running or ended), in start order."""
        with self._cond:
            return list(self._streams)

    @property
    def active_streams(self) -> list[StreamRecord]:
        """Generations that have started and not ended yet."""
        with self._cond:
            return [s for s in self._streams if s.outcome is None]

    def wait_until(self, predicate: Callable[[FakeOllama], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate(self)`` is true; it is re-checked whenever a request
        arrives or a generation starts, writes its first byte or ends. TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError(f"condition not met within {timeout} s")

    def wait_for_requests(
        self, n: int, timeout: float = 5.0, path: str | None = None
    ) -> list[RecordedRequest]:
        """Block until at least ``n`` requests (to ``path``, if given) were recorded.

        Returns a snapshot of those requests; raises TimeoutError otherwise."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: len(self._requests if path is None else self.requests_to(path)) >= n,
                timeout,
            )
            if not ok:
                raise TimeoutError(
                    f"only {len(self._requests)} requests recorded after {timeout} s (wanted {n})"
                )
            return list(self._requests) if path is None else self.requests_to(path)

    def wait_for_stream_end(self, timeout: float = 5.0) -> StreamRecord:
        """Return the next generation to end that no earlier call returned (in end order)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._ended_cursor < len(self._ended), timeout):
                raise TimeoutError(f"no stream ended within {timeout} s")
            record = self._ended[self._ended_cursor]
            self._ended_cursor += 1
            return record

    def _record_request(
        self, request: web.Request, body: Any, body_error: str | None
    ) -> RecordedRequest:
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            json=body if body_error is None else None,
            received_at=time.monotonic(),
        )
        with self._cond:
            self._requests.append(recorded)
            self._cond.notify_all()
        return recorded

    def _stream_started(self, call: _Call, model_name: str, stream: bool) -> StreamRecord:
        record = StreamRecord(
            path=call.request.path,
            model=model_name,
            stream=stream,
            request=call.recorded,
            started_at=time.monotonic(),
        )
        if self.record:
            with self._cond:
                self._streams.append(record)
                self._cond.notify_all()
        return record

    def _first_byte(self, record: StreamRecord) -> None:
        record.first_byte_at = time.monotonic()
        if self.record:
            with self._cond:
                self._cond.notify_all()

    def _stream_ended(self, record: StreamRecord, outcome: Outcome, generation: int) -> None:
        record.ended_at = time.monotonic()
        record.outcome = (
            "aborted" if self._stopping and outcome == "client_disconnected" else outcome
        )
        if self.record:
            with self._cond:
                if generation == self._generation:
                    self._ended.append(record)
                self._cond.notify_all()

    # ----------------------------------------------------------------- scheduling

    def _resolve(self, name: str, not_found: str) -> FakeModel:
        parsed = _parse_model_name(name)
        if parsed is None:
            raise _ApiError(400, "invalid model name")
        model = self._index.get(_model_key(parsed))
        if model is None:
            raise _ApiError(404, not_found)
        return model

    def busy_now(self) -> float:
        """Seconds the backend has had a request running, the current spell included."""
        spell = time.monotonic() - self._busy_since if self._busy_since is not None else 0.0
        return self.busy_seconds + spell

    async def _stats(self, call: _Call) -> web.Response:
        return web.json_response(
            {
                "busy_seconds": self.busy_now(),
                "peak_in_flight": self.peak_in_flight,
                "requests": len(self._requests),
            }
        )

    async def _acquire_slot(self) -> None:
        limit = self.max_concurrent
        if limit is None or (self._active < limit and not self._waiters):
            if self._active == 0:
                self._busy_since = time.monotonic()
            self._active += 1
            self.peak_in_flight = max(self.peak_in_flight, self._active)
            return
        if len(self._waiters) >= self.max_queue:
            raise _ApiError(503, BUSY_MESSAGE)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the releasing request hands its slot over (see _release_slot)
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release_slot()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _release_slot(self) -> None:
        self._active -= 1
        limit = self.max_concurrent
        while self._waiters and (limit is None or self._active < limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._active += 1
                self.peak_in_flight = max(self.peak_in_flight, self._active)
                waiter.set_result(None)
        if self._active == 0 and self._busy_since is not None:
            self.busy_seconds += time.monotonic() - self._busy_since
            self._busy_since = None
        # A released slot is what `wait_until(lambda f: f.in_flight == 0)` waits
        # for: it lands after the client has read the last byte of the answer.
        with self._cond:
            self._cond.notify_all()

    @contextlib.asynccontextmanager
    async def _scheduled(
        self, model: FakeModel, keep_alive: float, options: Mapping[str, Any]
    ) -> AsyncIterator[int]:
        """Get a runner like the scheduler: 503 when busy/queue full, injected load
        failures, then the model counts as loaded. Yields perf_counter_ns at load time."""
        if self.busy:
            raise _ApiError(503, BUSY_MESSAGE)
        await self._acquire_slot()
        try:
            if self.oom:
                raise _ApiError(500, OOM_MESSAGE)
            if self.fail_before_first_token:
                raise _ApiError(500, RUNNER_STOPPED_MESSAGE)
            num_ctx = int(options.get("num_ctx") or DEFAULT_NUM_CTX)
            self._use_model(model, keep_alive, num_ctx, +1)
            try:
                yield time.perf_counter_ns()
            finally:
                self._use_model(model, keep_alive, num_ctx, -1)
        finally:
            self._release_slot()

    def _use_model(self, model: FakeModel, keep_alive: float, num_ctx: int, delta: int) -> None:
        key = model.qualified_name.lower()
        entry = self._loaded.get(key)
        if entry is None:
            entry = self._loaded[key] = _Loaded(model=model, expires_at=0.0, num_ctx=num_ctx)
        entry.refs += delta
        entry.num_ctx = num_ctx
        entry.expires_at = time.time() + keep_alive
        if entry.refs <= 0 and keep_alive == 0:
            self._loaded.pop(key, None)

    def _unload(self, model: FakeModel) -> None:
        self._loaded.pop(model.qualified_name.lower(), None)

    async def _pre_header_delay(self) -> None:
        delay = self.first_token_delay + (self.stall or 0.0)
        if delay > 0:
            await asyncio.sleep(delay)

    # ----------------------------------------------------------------- dispatch

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        t0 = time.perf_counter_ns()
        body, body_error = _decode_body(await request.read())
        recorded = self._record_request(request, body, body_error) if self.record else None
        path = request.path
        methods = self._routes.get(path)
        if methods is None:
            if path.endswith("/") and path.rstrip("/") in self._routes:
                return _redirect(request, path.rstrip("/"))
            return web.Response(
                status=404, body=b"404 page not found", headers={"Content-Type": _GIN_TEXT_CT}
            )
        handler = methods.get(request.method)
        if handler is None:
            return web.Response(
                status=405,
                body=b"405 method not allowed",
                headers={"Content-Type": _GIN_TEXT_CT, "Allow": ", ".join(methods)},
            )
        if path.startswith("/api/"):
            if self.garbage:
                streaming = path in ("/api/chat", "/api/generate") and not (
                    isinstance(body, dict) and body.get("stream") is False
                )
                return web.Response(
                    body=GARBAGE_BODY,
                    headers={"Content-Type": _NDJSON_CT if streaming else _JSON_CT},
                )
        task = asyncio.current_task()
        assert task is not None
        self._in_flight[task] = request
        try:
            if path.startswith("/api/") and path not in _INFERENCE_PATHS and self.stall:
                await asyncio.sleep(self.stall)
            return await handler(_Call(request, body, body_error, t0, recorded))
        except _ApiError as error:
            return _error_response(error)
        finally:
            del self._in_flight[task]

    # ----------------------------------------------------------------- simple endpoints

    async def _root(self, call: _Call) -> web.Response:
        return web.Response(body=b"Ollama is running", headers={"Content-Type": _TEXT_CT})

    async def _version(self, call: _Call) -> web.Response:
        return _json_response(200, {"version": self.version})

    async def _tags(self, call: _Call) -> web.Response:
        models = sorted(self._index.values(), key=lambda m: m.modified_at.timestamp(), reverse=True)
        return _json_response(
            200,
            {
                "models": [
                    {
                        "name": m.display_name,
                        "model": m.display_name,
                        "modified_at": _format_dt(m.modified_at.astimezone()),
                        "size": m.size,
                        "digest": m.digest,
                        "details": m.details(),
                    }
                    for m in models
                ]
            },
        )

    async def _show(self, call: _Call) -> web.Response:
        req = _parse_request(call, "ShowRequest", _SHOW_FIELDS)
        name = req.get("model") or req.get("name") or ""
        if not name:
            raise _ApiError(400, "model is required")
        parsed = _parse_model_name(name)
        if parsed is None:
            raise _ApiError(400, "invalid model name")
        model = self._resolve(name, not_found=f"model '{_display_shortest(parsed)}' not found")
        arch = model.family
        body: dict[str, Any] = {}
        if model.license:
            body["license"] = model.license
        body["modelfile"] = (
            '# Modelfile generated by "ollama show"\n'
            "# To build a new Modelfile based on this, replace FROM with:\n"
            f"# FROM {model.display_name}\n\n"
            f"FROM /root/.ollama/models/blobs/sha256-{model.digest}\n"
            f'TEMPLATE """{model.template}"""\n'
            + "".join(f"PARAMETER {line}\n" for line in model.parameters.splitlines())
        )
        if model.parameters:
            body["parameters"] = model.parameters
        body["template"] = model.template
        body["details"] = model.details()
        body["model_info"] = {
            "general.architecture": arch,
            "general.file_type": 15,
            "general.parameter_count": model.parameter_count,
            "general.quantization_version": 2,
            f"{arch}.context_length": model.context_length,
            f"{arch}.embedding_length": model.embedding_length,
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.tokens": [],
            "tokenizer.ggml.token_type": [],
        }
        body["capabilities"] = list(model.capabilities)
        body["modified_at"] = _format_dt(model.modified_at.astimezone())
        return _json_response(200, body)

    async def _ps(self, call: _Call) -> web.Response:
        now = time.time()
        entries = [e for e in list(self._loaded.values()) if e.refs > 0 or e.expires_at > now]
        entries.sort(key=lambda e: e.expires_at, reverse=True)
        models = []
        for entry in entries:
            model = entry.model
            if entry.expires_at == _FOREVER:
                expires = datetime.now(UTC) + timedelta(microseconds=(2**63 - 1) // 1000)
            else:
                expires = datetime.fromtimestamp(entry.expires_at, UTC)
            size = model.size + entry.num_ctx * 1024 * 64
            models.append(
                {
                    "name": model.display_name,
                    "model": model.display_name,
                    "size": size,
                    "digest": model.digest,
                    "details": model.details(),
                    "expires_at": _format_dt(expires.astimezone()),
                    "size_vram": size,
                    "context_length": entry.num_ctx,
                }
            )
        return _json_response(200, {"models": models})

    # ----------------------------------------------------------------- chat / generate

    def _check_think(self, req: Mapping[str, Any], model: FakeModel, model_name: str) -> bool:
        """Resolve ``think`` like the real handlers (default on for thinking models)."""
        think = req.get("think")
        if "thinking" in model.capabilities:
            return think is None or think is True or isinstance(think, str)
        if think is True or isinstance(think, str):
            raise _ApiError(400, f"{_go_quote(model_name)} does not support thinking")
        return False

    async def _chat(self, call: _Call) -> web.StreamResponse:
        req = _parse_request(call, "ChatRequest", _CHAT_FIELDS)
        _check_top_logprobs(req)
        model_name = req.get("model") or ""
        if not model_name:
            raise _ApiError(400, "model is required")
        model = self._resolve(model_name, not_found=f"model '{model_name}' not found")
        keep_alive = _keep_alive_seconds(req.get("keep_alive"))
        messages = [m for m in req.get("messages") or [] if m is not None]
        if not messages and keep_alive == 0:
            self._unload(model)
            return _json_response(200, self._chat_done(model_name, "unload"))
        think = self._check_think(req, model, model_name)
        tools = req.get("tools") or []
        if "completion" not in model.capabilities:
            raise _ApiError(400, f"{_go_quote(model_name)} does not support chat")
        if tools and "tools" not in model.capabilities:
            raise _ApiError(400, f"{model.qualified_name} does not support tools")
        options = _check_options(req.get("options"))
        stream = req.get("stream") is not False
        async with self._scheduled(model, keep_alive, options) as t_loaded:
            if not messages:
                return _json_response(200, self._chat_done(model_name, "load"))
            _raise_format_error(req.get("format"), stream)
            last = messages[-1]
            user_text = next(
                (
                    m.get("content") or ""
                    for m in reversed(messages)
                    if (m.get("role") or "").lower() == "user"
                ),
                "",
            )
            if (last.get("role") or "").lower() == "tool":
                reply_text = f"The tool returned: {last.get('content') or ''}"
            else:
                reply_text = f"You said: {user_text}" if user_text.strip() else _DEFAULT_GREETING
            wants_tool = bool(tools) and (last.get("role") or "").lower() == "user"
            plan = self._plan(
                think=think,
                fmt=req.get("format"),
                options=options,
                reply_text=reply_text,
                prompt_words=sum(_words(m.get("content")) for m in messages),
                tools=tools if wants_tool else None,
                tool_text=user_text,
            )
            plan.top_logprobs = _wanted_logprobs(req)
            return await self._run_generation(
                call, model_name, stream, plan, t_loaded, chat=True, context=False
            )

    async def _generate(self, call: _Call) -> web.StreamResponse:
        req = _parse_request(call, "GenerateRequest", _GENERATE_FIELDS)
        _check_top_logprobs(req)
        model_name = req.get("model") or ""
        if not model_name:
            raise _ApiError(404, "model '' not found")
        model = self._resolve(model_name, not_found=f"model '{model_name}' not found")
        keep_alive = _keep_alive_seconds(req.get("keep_alive"))
        prompt = req.get("prompt") or ""
        if not prompt and keep_alive == 0:
            self._unload(model)
            return _json_response(200, self._generate_done(model_name, "unload"))
        if req.get("raw") and (req.get("template") or req.get("system") or req.get("context")):
            raise _ApiError(400, "raw mode does not support template, system, or context")
        think = self._check_think(req, model, model_name)
        if "completion" not in model.capabilities:
            raise _ApiError(400, f"{_go_quote(model_name)} does not support generate")
        if req.get("suffix") and "insert" not in model.capabilities:
            raise _ApiError(400, f"{model.qualified_name} does not support insert")
        options = _check_options(req.get("options"))
        stream = req.get("stream") is not False
        async with self._scheduled(model, keep_alive, options) as t_loaded:
            if not prompt:
                return _json_response(200, self._generate_done(model_name, "load"))
            _raise_format_error(req.get("format"), stream)
            plan = self._plan(
                think=think,
                fmt=req.get("format"),
                options=options,
                reply_text=f"You said: {prompt}" if prompt.strip() else _DEFAULT_GREETING,
                prompt_words=_words(prompt) + _words(req.get("system")) + _words(req.get("suffix")),
                tools=None,
                tool_text=prompt,
            )
            plan.top_logprobs = _wanted_logprobs(req)
            return await self._run_generation(
                call, model_name, stream, plan, t_loaded, chat=False, context=not req.get("raw")
            )

    @staticmethod
    def _chat_done(model_name: str, reason: str) -> dict[str, Any]:
        return {
            "model": model_name,
            "created_at": _rfc3339_now(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": reason,
        }

    @staticmethod
    def _generate_done(model_name: str, reason: str) -> dict[str, Any]:
        return {
            "model": model_name,
            "created_at": _rfc3339_now(),
            "response": "",
            "done": True,
            "done_reason": reason,
        }

    def _plan(
        self,
        *,
        think: bool,
        fmt: Any,
        options: Mapping[str, Any],
        reply_text: str,
        prompt_words: int,
        tools: Sequence[Mapping[str, Any]] | None,
        tool_text: str,
    ) -> _Plan:
        """Decide the deterministic output of one generation."""
        thinking = (
            list(self.thinking_reply)
            if self.thinking_reply is not None
            else _tokenize(_DEFAULT_THINKING)
        )
        thinking = thinking if think else []
        calls = self._tool_calls(tools, tool_text) if tools else None
        if calls:
            events: list[tuple[str, Any]] = [("thinking", t) for t in thinking]
            events.append(("tool_calls", calls))
            eval_count = len(thinking) + sum(
                8 + len(_ENCODE(c["function"]["arguments"])) // 4 for c in calls
            )
            return _Plan(events, "stop", prompt_words + PROMPT_TOKEN_OVERHEAD, eval_count)
        if fmt:
            value = (
                _schema_value(fmt, reply_text) if isinstance(fmt, dict) else {"answer": reply_text}
            )
            content = _tokenize(json.dumps(value, ensure_ascii=False))
        elif self.reply is not None:
            content = list(self.reply)
        else:
            content = _tokenize(reply_text)
        content = _apply_stop(content, options.get("stop") or [])
        tokens = [("thinking", t) for t in thinking] + [("content", t) for t in content]
        done_reason = "stop"
        limit = options.get("num_predict")
        # Like the runner: hitting the limit is "length" even if the reply would end right there.
        if (
            isinstance(limit, (int, float))
            and not isinstance(limit, bool)
            and 0 < int(limit) <= len(tokens)
        ):
            tokens = tokens[: int(limit)]
            done_reason = "length"
        return _Plan(tokens, done_reason, prompt_words + PROMPT_TOKEN_OVERHEAD, max(1, len(tokens)))

    def _tool_calls(
        self, tools: Sequence[Mapping[str, Any]], text: str
    ) -> list[dict[str, Any]] | None:
        forced = self.tool_call
        if forced is not None:
            wanted = [forced] if isinstance(forced, Mapping) else list(forced)
            specs = [(str(c["name"]), dict(c.get("arguments") or {})) for c in wanted]
            fixed_ids = [c.get("id") for c in wanted]
        elif "weather" in text.lower():
            named = [
                t
                for t in tools
                if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)
            ]
            if not named:
                return None
            tool = next(
                (t for t in named if "weather" in str(t["function"].get("name", "")).lower()),
                named[0],
            )
            specs = [(str(tool["function"].get("name", "")), _tool_arguments(tool, text))]
            fixed_ids = [None]
        else:
            return None
        self._call_counter += 1
        calls = []
        for index, (name, arguments) in enumerate(specs):
            digest = hashlib.sha1(f"{self._call_counter}:{index}".encode()).digest()
            # A test may fix the id (`tool_call={"id": ...}`) to follow it across surfaces.
            call_id = fixed_ids[index] or "call_" + "".join(
                "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36] for b in digest[:8]
            )
            calls.append(
                {"id": call_id, "function": {"index": index, "name": name, "arguments": arguments}}
            )
        return calls

    async def _run_generation(
        self,
        call: _Call,
        model_name: str,
        stream: bool,
        plan: _Plan,
        t_loaded: int,
        *,
        chat: bool,
        context: bool,
    ) -> web.StreamResponse:
        """Emit a planned generation (honouring delays and failure knobs); record how it ended."""
        record = self._stream_started(call, model_name, stream)
        generation = self._generation
        outcome: Outcome = "client_disconnected"
        try:
            await self._pre_header_delay()
            if stream:
                response, outcome = await self._emit_stream(
                    call, model_name, plan, t_loaded, record, chat, context
                )
            else:
                response, outcome = await self._emit_single(
                    call, model_name, plan, t_loaded, record, chat, context
                )
            return response
        except ConnectionError:
            return web.Response()
        finally:
            self._stream_ended(record, outcome, generation)

    def _trigger(self, count: int) -> tuple[str | None, int]:
        """Which injected failure fires, and before which line index."""
        cut, err = self.disconnect_after_tokens, self.error_after_tokens
        if cut is not None and (err is None or cut <= err):
            return "abort", min(cut, count)
        if err is not None:
            return "error", min(err, count)
        return None, count

    @staticmethod
    def _answer(
        model_name: str,
        chat: bool,
        done: bool,
        content: str,
        thinking: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """One line of a chat or generate answer, up to `done` (`thinking`, `tool_calls` if set)."""
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking is not None:
                message["thinking"] = thinking
            if tool_calls is not None:
                message["tool_calls"] = tool_calls
            return {
                "model": model_name,
                "created_at": _rfc3339_now(),
                "message": message,
                "done": done,
            }
        line: dict[str, Any] = {
            "model": model_name,
            "created_at": _rfc3339_now(),
            "response": content,
        }
        if thinking is not None:
            line["thinking"] = thinking
        line["done"] = done
        return line

    def _line(self, model_name: str, kind: str, value: Any, chat: bool) -> dict[str, Any]:
        return self._answer(
            model_name,
            chat,
            False,
            value if kind == "content" else "",
            thinking=value if kind == "thinking" else None,
            tool_calls=value if kind == "tool_calls" else None,
        )

    def _final(
        self,
        call: _Call,
        model_name: str,
        plan: _Plan,
        t_loaded: int,
        t_first: int,
        chat: bool,
        context: bool,
        content: str = "",
        thinking: str = "",
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        metrics = _metrics(
            call.t0_ns,
            t_loaded,
            t_first,
            time.perf_counter_ns(),
            plan.prompt_eval_count,
            plan.eval_count,
        )
        final = self._answer(model_name, chat, True, content, thinking or None, tool_calls or None)
        final["done_reason"] = plan.done_reason
        if context and not chat:
            final["context"] = [
                (i * 7919 + 128000) % 151936
                for i in range(plan.prompt_eval_count + plan.eval_count)
            ]
        final.update(metrics)
        return final

    async def _emit_stream(
        self,
        call: _Call,
        model_name: str,
        plan: _Plan,
        t_loaded: int,
        record: StreamRecord,
        chat: bool,
        context: bool,
    ) -> tuple[web.StreamResponse, Outcome]:
        request = call.request
        events = plan.events
        failure, fire_at = self._trigger(len(events))
        response: web.StreamResponse | None = None
        t_first = time.perf_counter_ns()
        for index in range(len(events) + 1):
            if index and self.token_delay > 0:
                await asyncio.sleep(self.token_delay)
            transport = request.transport
            if transport is None or transport.is_closing():
                return response or web.Response(), "client_disconnected"
            if failure is not None and index == fire_at:
                if failure == "abort":
                    transport.abort()
                    return web.Response(), "aborted"
                if response is None:  # nothing written yet: the real server still sets a status
                    return _error_response(
                        _ApiError(500, MID_STREAM_ERROR_MESSAGE, _BARE_JSON_CT)
                    ), "error_line"
                await response.write(_go_json({"error": MID_STREAM_ERROR_MESSAGE}) + b"\n")
                await response.write_eof()
                return response, "error_line"
            if index < len(events):
                kind, value = events[index]
                line = self._line(model_name, kind, value, chat)
                if plan.top_logprobs is not None and kind == "content":
                    line["logprobs"] = fake_logprobs([value], plan.top_logprobs)
            else:
                line = self._final(call, model_name, plan, t_loaded, t_first, chat, context)
            if response is None:
                response = web.StreamResponse(headers={"Content-Type": _NDJSON_CT})
                await response.prepare(request)
                self._first_byte(record)
            await response.write(_go_json(line) + b"\n")
            if index < len(events):
                record.tokens_sent += 1
        assert response is not None
        await response.write_eof()
        return response, "completed"

    async def _emit_single(
        self,
        call: _Call,
        model_name: str,
        plan: _Plan,
        t_loaded: int,
        record: StreamRecord,
        chat: bool,
        context: bool,
    ) -> tuple[web.StreamResponse, Outcome]:
        request = call.request
        events = plan.events
        failure, fire_at = self._trigger(len(events))
        t_first = time.perf_counter_ns()
        if self.token_delay > 0 and fire_at:
            await asyncio.sleep(self.token_delay * fire_at)
        transport = request.transport
        if transport is None or transport.is_closing():
            return web.Response(), "client_disconnected"
        if failure == "abort":
            transport.abort()
            return web.Response(), "aborted"
        if failure == "error":
            return _error_response(_ApiError(500, MID_STREAM_ERROR_MESSAGE)), "error_line"
        content = "".join(v for k, v in events if k == "content")
        thinking = "".join(v for k, v in events if k == "thinking")
        tool_calls = [c for k, v in events if k == "tool_calls" for c in v]
        body = self._final(
            call, model_name, plan, t_loaded, t_first, chat, context, content, thinking, tool_calls
        )
        if plan.top_logprobs is not None:
            body["logprobs"] = fake_logprobs(
                [v for k, v in events if k == "content"], plan.top_logprobs
            )
        response = web.Response(body=_go_json(body), headers={"Content-Type": _JSON_CT})
        await response.prepare(request)
        self._first_byte(record)
        await response.write_eof()
        record.tokens_sent = len(events)
        return response, "completed"

    # ----------------------------------------------------------------- embeddings

    def _vector(self, model: FakeModel, text: str, dim: int) -> list[float]:
        """Deterministic unit-length vector for (model, text)."""
        raw = hashlib.shake_256(f"{model.qualified_name.lower()}\0{text}".encode()).digest(2 * dim)
        values = [v / 32767.5 - 1.0 for v in struct.unpack(f"<{dim}H", raw)]
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        return [v / norm for v in values]

    async def _embed(self, call: _Call) -> web.Response:
        req = _parse_request(call, "EmbedRequest", _EMBED_FIELDS)
        model_name = req.get("model") or ""
        if not model_name:
            raise _ApiError(404, "model '' not found")
        raw_input = req.get("input")
        if isinstance(raw_input, str):
            inputs = [raw_input] if raw_input else []
        elif isinstance(raw_input, list):
            if not all(isinstance(item, str) for item in raw_input):
                raise _ApiError(400, "invalid input type")
            inputs = list(raw_input)
        elif raw_input is None:
            inputs = []
        else:
            raise _ApiError(400, "invalid input type")
        model = self._resolve(
            model_name, not_found=f"model {_go_quote(model_name)} not found, try pulling it first"
        )
        options = _check_options(req.get("options"))
        async with self._scheduled(
            model, _keep_alive_seconds(req.get("keep_alive")), options
        ) as t_loaded:
            if not inputs:
                return _json_response(200, {"model": model_name, "embeddings": []})
            await self._pre_header_delay()
            if req.get("truncate") is False and any(
                _words(text) > model.context_length for text in inputs
            ):
                raise _ApiError(400, "the input length exceeds the context length")
            gate = self._embed_gate
            if gate is not None:
                await gate.wait()
            cost = self.embed_call_delay + self.embed_input_delay * len(inputs)
            if cost > 0:
                await asyncio.sleep(cost)
            dim = max(1, int(self.embedding_dim))
            dimensions = int(req.get("dimensions") or 0)
            vectors = []
            for text in inputs:
                vector = self._vector(model, text, dim)
                if 0 < dimensions < dim:
                    vector = vector[:dimensions]
                    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
                    vector = [v / norm for v in vector]
                vectors.append([float(f"{v:.8g}") for v in vector])
            body: dict[str, Any] = {
                "model": model_name,
                "embeddings": vectors,
                "total_duration": max(1, time.perf_counter_ns() - call.t0_ns),
                "load_duration": max(1, t_loaded - call.t0_ns),
            }
            prompt_count = sum(_words(text) for text in inputs)
            if prompt_count:
                body["prompt_eval_count"] = prompt_count
            with self._cond:
                self.embed_calls += 1
                self.embed_inputs += len(inputs)
                self.embed_tokens += prompt_count
                self._cond.notify_all()
            return _json_response(200, body)

    async def _embeddings(self, call: _Call) -> web.Response:
        req = _parse_request(call, "EmbeddingRequest", _EMBEDDINGS_FIELDS)
        model_name = req.get("model") or ""
        if not model_name:
            raise _ApiError(400, "model is required")
        model = self._resolve(
            model_name, not_found=f"model {_go_quote(model_name)} not found, try pulling it first"
        )
        options = _check_options(req.get("options"))
        async with self._scheduled(model, _keep_alive_seconds(req.get("keep_alive")), options):
            prompt = req.get("prompt") or ""
            if not prompt:
                return _json_response(200, {"embedding": []})
            await self._pre_header_delay()
            dim = max(1, int(self.embedding_dim))
            scale = (
                5.0 + hashlib.sha256(prompt.encode()).digest()[0] / 25.0
            )  # legacy vectors are not normalised
            values = [v * scale for v in self._vector(model, prompt, dim)]
            as_float32 = struct.unpack(f"<{dim}f", struct.pack(f"<{dim}f", *values))
            return _json_response(200, {"embedding": list(as_float32)})


def _raise_format_error(fmt: Any, stream: bool) -> None:
    """The runner rejects a bad ``format`` before the first token.

    The status is 500; a streaming request gets the bare ``application/json`` type."""
    message = _format_error(fmt)
    if message is not None:
        raise _ApiError(500, message, _BARE_JSON_CT if stream else _JSON_CT)


def _redirect(request: web.Request, location: str) -> web.Response:
    """gin's RedirectTrailingSlash: 301 for GET, 307 otherwise."""
    if request.method == "GET":
        body = f'<a href="{location}">Moved Permanently</a>.\n\n'.encode()
        return web.Response(
            status=301,
            body=body,
            headers={"Location": location, "Content-Type": "text/html; charset=utf-8"},
        )
    return web.Response(status=307, headers={"Location": location})


async def _strip_server_header(request: web.Request, response: web.StreamResponse) -> None:
    """Go's net/http sends no Server header; aiohttp's would give the fake away."""
    response.headers.popall("Server", None)


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake as a standalone process until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_ollama", description="Fake Ollama server."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434, help="0 picks a free port")
    parser.add_argument(
        "--token-delay", type=float, default=0.0, help="seconds between streamed tokens"
    )
    parser.add_argument(
        "--first-token-delay", type=float, default=0.0, help="seconds before the first token"
    )
    parser.add_argument(
        "--tokens", type=int, default=None, help="reply with exactly N tokens (default: echo)"
    )
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument(
        "--embed-call-ms", type=float, default=0.0, help="ms each /api/embed call costs"
    )
    parser.add_argument(
        "--embed-input-ms", type=float, default=0.0, help="ms each input of a call adds"
    )
    parser.add_argument("--max-concurrent", type=int, default=None)
    parser.add_argument("--max-queue", type=int, default=512)
    parser.add_argument(
        "--record", action="store_true", help="keep request recordings (grows without bound)"
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="on exit, print one JSON line of counters (embed_calls, embed_inputs, ...)",
    )
    args = parser.parse_args(argv)

    fake = FakeOllama(
        args.host,
        args.port,
        record=args.record,
        token_delay=args.token_delay,
        first_token_delay=args.first_token_delay,
        reply=numbered_reply(args.tokens) if args.tokens is not None else None,
        embedding_dim=args.embedding_dim,
        embed_call_delay=args.embed_call_ms / 1000,
        embed_input_delay=args.embed_input_ms / 1000,
        max_concurrent=args.max_concurrent,
        max_queue=args.max_queue,
    )
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    fake.start()
    print(fake.url, flush=True)
    try:
        done.wait()
    finally:
        fake.stop()
    if args.stats:
        counters = {
            "embed_calls": fake.embed_calls,
            "embed_inputs": fake.embed_inputs,
            "embed_tokens": fake.embed_tokens,
            "peak_in_flight": fake.peak_in_flight,
        }
        print(json.dumps(counters), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
