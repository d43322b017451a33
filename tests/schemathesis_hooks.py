"""Schemathesis hooks for tests/test_schema_fuzz.py, loaded through SCHEMATHESIS_HOOKS.

- An `application/x-ndjson` deserializer: Ollama's streams are documented as
  the array of their lines, so schemathesis checks every line of them.
- Test data for constraints a schema cannot carry, applied only to the cases
  schemathesis generates as valid (its invalid cases stay as generated):
  a key's `owner` names an existing user; a `model` that names one of the
  fake Ollama's models names one able to do what the operation asks (chat
  with tools, images and thinking, or embeddings); a `tool_choice` function
  is one of `tools`; tool-call `arguments` given as text are JSON text.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis import Case, DeserializationContext, HookContext, Response

STAFF_USER = "fuzz-staff"
CHAT_MODEL = "fuzz-everything:latest"
EMBEDDING_MODEL = "mxbai-embed-large:latest"
FAKE_MODELS = {
    "qwen2.5:14b",
    "llama3.2",
    "llama3.2:latest",
    "mxbai-embed-large",
    "mxbai-embed-large:latest",
    "hf.co/org/name:q4_k_m",
    "qwen3:8b",
}
EMBEDDING_PATHS = ("/embeddings", "/embed")


@schemathesis.deserializer("application/x-ndjson")
def ndjson_lines(ctx: DeserializationContext, response: Response) -> list[Any]:
    return [json.loads(line) for line in response.content.splitlines() if line.strip()]


def _positive(case: Case) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


@schemathesis.hook
def map_case(context: HookContext, case: Case) -> Case:
    body = case.body
    if not isinstance(body, dict):
        return case
    path = case.operation.path
    anthropic = path.endswith(("/v1/messages", "/v1/messages/count_tokens"))
    if anthropic and str(body.get("model")).lower() in FAKE_MODELS:
        # Any case (a model name is valid either way): one that can think, as
        # `thinking` asks, whichever generation mode produced the case.
        body["model"] = CHAT_MODEL
    if not _positive(case):
        return case
    if path == "/admin/api-keys" and isinstance(body.get("owner"), str):
        body["owner"] = STAFF_USER
    for field in ("model", "name", "source"):
        value = body.get(field)
        if isinstance(value, str) and value.lower() in FAKE_MODELS:
            body[field] = EMBEDDING_MODEL if path.endswith(EMBEDDING_PATHS) else CHAT_MODEL
    tools = body.get("tools")
    choice = body.get("tool_choice")
    # Replaced, not changed in place: the coverage phase shares one `tool_choice`
    # object between the cases it builds, so an in-place change of one case's
    # name is overwritten by the next case's before the first is sent.
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        names = [tool["function"]["name"] for tool in tools or () if isinstance(tool, dict)]
        if names:
            body["tool_choice"] = {**choice, "function": {**choice["function"], "name": names[0]}}
    # Anthropic's {"type": "tool", "name"} and the Responses API's {"type": "function", "name"}.
    if isinstance(choice, dict) and isinstance(choice.get("name"), str):
        names = [tool.get("name") for tool in tools or () if isinstance(tool, dict)]
        if names:
            body["tool_choice"] = {**choice, "name": names[0]}
    items = body.get("input") if isinstance(body.get("input"), list) else ()
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("arguments"), str):
            try:
                valid = isinstance(json.loads(item["arguments"]), dict)
            except ValueError:
                valid = False
            if not valid and item["arguments"]:
                item["arguments"] = "{}"
    for message in body.get("messages") or ():
        for call in (message or {}).get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                try:
                    valid = isinstance(json.loads(function["arguments"]), dict)
                except ValueError:
                    valid = False
                if not valid and function["arguments"]:
                    function["arguments"] = "{}"
    return case
