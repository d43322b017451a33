"""Input validation shared by every REST surface.

- `StrictJSONMixin`: a JSON body's values must have the JSON types the
  documentation promises. DRF's fields coerce (`"stream": 0` is False,
  `"content": 5` is "5", `"max_tokens": "5"` is 5); the APIs this gateway
  mirrors (OpenAI, Ollama) refuse those, and so does the OpenAPI document.
  Mixed into each top-level input serializer; it checks nested serializers,
  lists and dicts too.
- `ModelNameField`: a model name in Ollama's grammar
  (`[host/][namespace/]model[:tag]`), refused by the gateway with a clear
  field error instead of the backend's bare "invalid model name".
- `json_body_check` / `json_body_parse` / `GatewayJSONParser`: the rules every
  JSON body obeys, whatever surface reads it (DRF's parser for the native,
  OpenAI and key-management APIs; the Ollama views; WebSocket frames): no
  nesting deeper than MAX_JSON_DEPTH, no NUL (U+0000) in any string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import IO, Any, NoReturn

import ollama
import pydantic
from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.parsers import JSONParser

from gateway.errors import BadRequestError, validation_error


def _too_deep() -> BadRequestError:
    return BadRequestError(
        f"The JSON body is nested deeper than {settings.MAX_JSON_DEPTH} levels (MAX_JSON_DEPTH)."
    )


def json_body_check(data: Any) -> None:
    """Refuse a parsed JSON body nested too deep or holding a NUL character.

    Iterative, so a body that parsed can be checked without recursing: the
    serializers and the backend client that see it next do recurse. NUL is
    refused because the backend's C strings end at it (what the model would
    read is not what was sent) and PostgreSQL cannot store it.
    """
    limit = settings.MAX_JSON_DEPTH
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if any("\x00" in key for key in value):
                raise _nul()
            items: Any = value.values()
        elif isinstance(value, list):
            items = value
        else:
            if isinstance(value, str) and "\x00" in value:
                raise _nul()
            continue
        if depth > limit:
            raise _too_deep()
        stack.extend((item, depth + 1) for item in items)


def _nul() -> BadRequestError:
    return BadRequestError("Strings in the JSON body must not contain NUL characters (U+0000).")


def json_body_parse(raw: str | bytes) -> Any:
    """`json.loads` with the gateway's rules; ValueError when the text is not JSON."""
    try:
        data = json.loads(raw)
    except RecursionError:
        # Python's decoder recurses once per level: past the interpreter's
        # limit it fails before json_body_check could refuse the depth.
        raise _too_deep() from None
    json_body_check(data)
    return data


class GatewayJSONParser(JSONParser):
    """DRF's JSON parser with the gateway's rules (settings: DEFAULT_PARSER_CLASSES)."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise _too_deep() from None
        json_body_check(data)
        return data


# Ollama's name parts (types/model/name.go): first character a letter, digit
# or `_`; the host may carry a port. Ollama reads a name from the right (tag,
# model, namespace, then host), so a host comes only with a namespace:
# `host:port/model` is a namespace with a colon, which Ollama refuses.
_PART = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"
_HOST = r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}"
MODEL_NAME_PATTERN = rf"^(?:(?:{_HOST}/)?{_PART}/)?{_PART}(?::{_PART})?$"
_MODEL_NAME_RE = re.compile(MODEL_NAME_PATTERN.replace("$", r"\Z"))


class ModelNameField(serializers.CharField):
    """A model name as Ollama parses it: `qwen2.5:14b`, `hf.co/org/name:Q4_K_M`."""

    default_error_messages = {
        "model_name": (
            "Not a valid model name: expected [host/][namespace/]model[:tag] made of letters, "
            "digits, '_', '.', '-'."
        ),
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 256)
        # A name with spaces around it is not a name: refuse rather than guess.
        kwargs["trim_whitespace"] = False
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value and not _MODEL_NAME_RE.match(value):
            self.fail("model_name")
        return value


class ModelNameFieldSchema(OpenApiSerializerFieldExtension):
    target_class = ModelNameField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "string",
            "maxLength": self.target.max_length,
            "description": "A model name: `[host/][namespace/]model[:tag]`.",
            "examples": ["qwen2.5:14b"],
        }
        if self.target.allow_blank:
            schema["anyOf"] = [{"pattern": MODEL_NAME_PATTERN}, {"const": ""}]
        else:
            schema["pattern"] = MODEL_NAME_PATTERN
        return schema


def _json_type_error(field: serializers.Field, value: Any) -> str | None:
    """Why `value` is not the JSON type `field` documents, or None."""
    if value is None:
        return None  # the field's own allow_null rule decides
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Must be a boolean (true or false)."
    if isinstance(field, serializers.IntegerField):
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        return None if integral and not isinstance(value, bool) else "Must be an integer."
    if isinstance(field, (serializers.FloatField, serializers.DecimalField)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if number else "Must be a number."
    if isinstance(field, serializers.ChoiceField):
        if all(isinstance(choice, str) for choice in field.choices) and not isinstance(value, str):
            return "Must be a string."
        return None
    if isinstance(field, serializers.CharField):
        return None if isinstance(value, str) else "Must be a string."
    if isinstance(field, (serializers.DictField, serializers.Serializer)):
        return None if isinstance(value, Mapping) else "Must be an object."
    if isinstance(field, (serializers.ListField, serializers.ListSerializer)):
        return None if isinstance(value, list) else "Must be an array."
    return None


def json_type_errors(field: serializers.Field, value: Any) -> Any:
    """DRF-shaped errors (dict / list / ErrorDetail list) for wrong JSON types, or None."""
    problem = _json_type_error(field, value)
    if problem:
        return [ErrorDetail(problem, code="invalid")]
    if value is None:
        return None
    if isinstance(field, serializers.ListSerializer) or isinstance(field, serializers.ListField):
        child = field.child
        # A list of objects holds objects; a null item is never what was meant.
        nullable = isinstance(field, serializers.ListField) and child.allow_null
        nested = {
            index: (
                [ErrorDetail("Must not be null.", code="null")]
                if item is None and not nullable
                else json_type_errors(child, item)
            )
            for index, item in enumerate(value)
        }
        nested = {index: error for index, error in nested.items() if error}
        return nested or None
    if isinstance(field, serializers.DictField):
        nested = {key: json_type_errors(field.child, item) for key, item in value.items()}
        nested = {key: error for key, error in nested.items() if error}
        return nested or None
    if isinstance(field, serializers.Serializer):
        nested = {
            name: json_type_errors(child, value[name])
            for name, child in field.fields.items()
            if name in value and not child.read_only
        }
        nested = {name: error for name, error in nested.items() if error}
        return nested or None
    return None


# The code of a field error that is a 400 (a valid value the backend cannot
# honour), not a 422: see `refuse` and `StrictJSONMixin.run_validation`.
UNSUPPORTED = "unsupported"


def refuse(message: str, *where: str | int) -> NoReturn:
    """Refuse a well-formed value with a 400 naming it (`where`: the path below the field)."""
    detail: Any = [ErrorDetail(message, code=UNSUPPORTED)]
    for key in reversed(where):
        detail = {key: detail}
    raise serializers.ValidationError(detail)


def _without_refusals(detail: Any) -> Any:
    """DRF's error detail without the `refuse` errors, or None if nothing else is left."""
    if isinstance(detail, dict):
        kept = {key: _without_refusals(value) for key, value in detail.items()}
        return {key: value for key, value in kept.items() if value} or None
    if isinstance(detail, list) and all(isinstance(item, ErrorDetail) for item in detail):
        return [item for item in detail if item.code != UNSUPPORTED] or None
    if isinstance(detail, list):  # a ListSerializer's errors: one entry per item, in place
        kept = [_without_refusals(item) or {} for item in detail]
        return kept if any(kept) else None
    return detail


class StrictJSONMixin:
    """Refuse (422, naming each field) values of the wrong JSON type before DRF coerces them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            errors = json_type_errors(self, data)  # type: ignore[arg-type]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)  # type: ignore[misc]

    def run_validation(self, data: Any = serializers.empty) -> Any:
        """A value `refuse`d by a field is a 400 naming it (`param`), answered only when
        no field failed validation: a 422 comes first, as when translation refused it."""
        try:
            return super().run_validation(data)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            invalid = _without_refusals(exc.detail)
            if invalid:
                raise serializers.ValidationError(invalid) from None
            first = validation_error(exc.detail).details[0]
            raise BadRequestError(first["msg"], param=first["loc"]) from None


# The typed fields of Ollama's api.Options. Ollama answers a wrong type with a
# 500, so the gateway checks them and answers 400/422 naming the option.
OLLAMA_OPTION_TYPES: dict[str, type] = {
    **dict.fromkeys(
        "num_keep seed num_predict top_k repeat_last_n mirostat num_ctx num_batch num_gpu "
        "main_gpu num_thread".split(),
        int,
    ),
    **dict.fromkeys(
        "top_p min_p typical_p temperature repeat_penalty presence_penalty frequency_penalty "
        "mirostat_tau mirostat_eta".split(),
        float,
    ),
    **dict.fromkeys(
        "numa use_mmap penalize_newline low_vram f16_kv vocab_only use_mlock".split(), bool
    ),
}
_OPTION_FIELDS: dict[type, serializers.Field] = {
    int: serializers.IntegerField(),
    float: serializers.FloatField(),
    bool: serializers.BooleanField(),
}


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            **{
                name: {"type": [{int: "integer", float: "number", bool: "boolean"}[kind], "null"]}
                for name, kind in sorted(OLLAMA_OPTION_TYPES.items())
            },
            "stop": {"type": ["array", "null"], "items": {"type": "string"}},
        },
        "additionalProperties": True,
        "description": "Model options (`temperature`, `num_ctx`, `num_predict`, `stop`, ...).",
    }
)
class OllamaOptionsField(serializers.DictField):
    """Ollama's `options`: known keys must have their type; unknown keys pass, as in Ollama."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        options = super().to_internal_value(data)
        errors: dict[str, list[ErrorDetail]] = {}
        for key, value in options.items():
            kind = OLLAMA_OPTION_TYPES.get(key)
            if kind is not None:
                problem = _json_type_error(_OPTION_FIELDS[kind], value)
            elif key == "stop" and value is not None:
                strings = isinstance(value, list) and all(isinstance(item, str) for item in value)
                problem = None if strings else "Must be an array of strings."
            else:
                problem = None
            if problem:
                errors[key] = [ErrorDetail(problem, code="invalid")]
        if errors:
            raise serializers.ValidationError(errors)
        return options


def tool_problem(tool: Mapping[str, Any]) -> str | None:
    """Why the ollama client would refuse `tool` (a function tool, Ollama-shaped), or None.

    The client validates tools against its own model before sending them; a
    tool it refuses is the caller's mistake, answered here as such (not as a
    backend failure).
    """
    try:
        ollama.Tool.model_validate(tool)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else error["msg"]
    return None


BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)$"


def tool_parameters_schema(*, nullable_type: bool) -> dict[str, Any]:
    """A tool's `parameters` as `tool_problem` (the ollama client's `Tool`) accepts them."""
    type_schema: dict[str, Any] = {"const": "object"}
    if nullable_type:
        type_schema = {"anyOf": [type_schema, {"type": "null"}]}
    return {
        "type": ["object", "null"],
        "properties": {
            "type": type_schema,
            "required": {"type": ["array", "null"], "items": {"type": "string"}},
            "properties": {
                "type": ["object", "null"],
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "type": {
                            "anyOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"type": "string"}},
                                {"type": "null"},
                            ]
                        },
                        "description": {"type": ["string", "null"]},
                        "enum": {"type": ["array", "null"]},
                    },
                },
            },
        },
        "description": "A JSON Schema of type object: `properties`, `required`.",
    }


def embedding_input_schema(combine: str, description: str) -> dict[str, Any]:
    """An embeddings `input`: a string or a list of strings, none empty, within the limits
    configured when the schema is built (so fields document it through an extension)."""
    text = {"type": "string", "minLength": 1, "maxLength": settings.MAX_EMBEDDING_INPUT_CHARS}
    return {
        combine: [
            text,
            {
                "type": "array",
                "items": text,
                "minItems": 1,
                "maxItems": settings.MAX_EMBEDDING_INPUTS,
            },
        ],
        "description": description,
    }
