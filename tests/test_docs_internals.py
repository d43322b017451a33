"""Rules the docs state through drf-spectacular's private methods.

`gateway.schema.GatewayAutoSchema` overrides `_get_request_body` (a JSON body
on Ollama's DELETE, every body required) and `_map_serializer_field` (what
DRF's CharField and list fields refuse, in the request schemas); there is no
public API for either in drf-spectacular 0.30. A release that renames or
reshapes them makes these tests fail instead of the docs silently losing the rules.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def schema(client, settings, tmp_path) -> dict[str, Any]:
    settings.BENCHMARK_RESULTS_FILE = tmp_path / "no-results.json"
    return client.get("/openapi.json").json()


def test_it_documents_the_json_body_of_ollamas_delete_as_required(schema: dict[str, Any]) -> None:
    body = schema["paths"]["/ollama/api/delete"]["delete"]["requestBody"]

    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OllamaModelOperationRequest"
    }


def test_it_documents_every_request_body_as_required(schema: dict[str, Any]) -> None:
    bodies = [
        operation["requestBody"]
        for item in schema["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "requestBody" in operation
    ]

    assert len(bodies) >= 15
    assert all(body["required"] is True for body in bodies)


def test_it_documents_that_strings_may_not_be_blank_nor_lists_empty(
    schema: dict[str, Any],
) -> None:
    components = schema["components"]["schemas"]

    name = components["ApiKeyCreateInputRequest"]["properties"]["name"]
    messages = components["ChatInputRequest"]["properties"]["messages"]

    assert (name["minLength"], name["pattern"]) == (1, r"\S")
    assert messages["minItems"] == 1
