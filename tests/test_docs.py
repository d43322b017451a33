"""The API documentation: /openapi.json, /openapi.yaml, /docs, /redoc.

What a reader of the docs relies on: they open without a key, load nothing
from outside the gateway, describe every operation (summary, description,
examples, every error with its envelope), mark exactly the secured
operations with `BearerAuth`, document the streamed variants, and their
examples are valid instances of the schemas they illustrate.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("get", "put", "post", "delete", "patch")
OPEN_OPERATIONS = {"healthz", "readyz", "ollama_root"}
TAGS = {"models", "chat", "embeddings", "openai", "ollama", "anthropic", "keys", "health"}


@pytest.fixture
def schema(client, settings, tmp_path: Path) -> dict[str, Any]:
    # No benchmark results unless a test writes some.
    settings.BENCHMARK_RESULTS_FILE = tmp_path / "no-results.json"
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def deref(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref`s (local) until a real node."""
    while "$ref" in node:
        target: Any = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator_for(schema: dict[str, Any], subschema: dict[str, Any]) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator of `subschema`, `$ref`s resolved in the document."""
    resource = Resource.from_contents(schema, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:openapi", resource)
    wrapped = json.loads(json.dumps(subschema).replace('"#/components', '"urn:openapi#/components'))
    return Draft202012Validator(wrapped, registry=registry)


# --- open, local ----------------------------------------------------------------


def test_it_serves_the_schema_as_json_and_yaml_without_a_key(client) -> None:
    as_json = client.get("/openapi.json")
    as_yaml = client.get("/openapi.yaml")

    assert as_json.status_code == 200
    assert as_yaml.status_code == 200
    document = as_json.json()
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] == "Local AI API"
    assert document["info"]["version"] == "1.0.0"
    assert yaml.safe_load(as_yaml.content)["paths"].keys() == document["paths"].keys()


def test_docs_pages_open_without_a_key_even_when_anonymous_requests_are_limited(
    http: httpx.Client, settings
) -> None:
    settings.RATE_LIMIT_UNAUTHENTICATED = 1

    for _ in range(3):
        for path in ("/openapi.json", "/openapi.yaml", "/docs", "/redoc"):
            response = http.get(path)
            assert response.status_code == 200, (path, response.text[:200])
            assert "x-ratelimit-limit-requests" not in response.headers
    assert http.get("/v1/models").status_code == 401


class _AssetLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name == "src" or (name == "href" and tag == "link")):
                self.links.append(value)


def _page_assets(html: str) -> list[str]:
    parser = _AssetLinks()
    parser.feed(html)
    # Swagger UI's settings name the schema URL inside a script.
    urls = re.findall(r'"url":\s*"([^"]+)"', html) + re.findall(r'spec-url="([^"]+)"', html)
    return parser.links + urls


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_every_asset_a_docs_page_references_is_served_by_the_gateway(
    http: httpx.Client, gateway: str, page: str
) -> None:
    html = http.get(page).text

    assets = _page_assets(html)

    assert len(assets) >= 2, assets
    for asset in assets:
        url = urljoin(f"{gateway}{page}", asset)
        assert urlparse(url).netloc == urlparse(gateway).netloc, f"{asset} is not local"
        response = http.get(url)
        assert response.status_code == 200, (asset, response.status_code)
        assert response.content


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_forbid_the_browser_anything_but_the_gateway(client, page: str) -> None:
    policy = client.get(page)["Content-Security-Policy"]

    assert "default-src 'self'" in policy
    assert "img-src 'self' data:" in policy
    assert "http" not in policy


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/ollama/"])
@pytest.mark.parametrize("method", ["post", "delete", "trace"])
def test_open_routes_answer_other_methods_405_in_the_envelope(
    http: httpx.Client, path: str, method: str
) -> None:
    response = http.request(method.upper(), path)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"


# --- content ----------------------------------------------------------------------


def test_tags_are_the_apis_areas_each_described(schema: dict[str, Any]) -> None:
    tags = {tag["name"]: tag["description"] for tag in schema["tags"]}

    assert set(tags) == TAGS
    assert all(len(description) > 20 for description in tags.values())


def test_the_description_tells_features_authentication_and_rate_limits(
    schema: dict[str, Any], settings
) -> None:
    description = schema["info"]["description"]

    for words in ("Main features", "Authentication", "Authorization: Bearer", "Rate limits"):
        assert words in description
    assert f"* chat: {settings.RATE_LIMITS['chat']}\n" in description
    assert f"* embeddings: {settings.RATE_LIMITS['embeddings']}\n" in description
    assert f"* everything else: {settings.RATE_LIMIT_DEFAULT}\n" in description
    # No line of prose starts with a number (Markdown would make it a list item).
    assert not re.search(r"^\d+\. ", description, re.MULTILINE)


def test_every_operation_has_a_summary_description_tag_and_examples(
    schema: dict[str, Any],
) -> None:
    listed = operations(schema)

    assert len(listed) >= 34
    for path, method, operation in listed:
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert len(operation.get("description", "")) > 20, where
        assert len(operation["tags"]) == 1 and operation["tags"][0] in TAGS, where
        body = operation.get("requestBody")
        if body:
            assert body["content"]["application/json"].get("examples"), where
        success = operation["responses"].get("200") or operation["responses"].get("201")
        assert success, where
        for media_type, content in success.get("content", {}).items():
            assert content.get("examples"), (where, media_type)


def test_every_operation_documents_every_error_it_can_give_with_the_envelope(
    schema: dict[str, Any],
) -> None:
    for path, method, operation in operations(schema):
        if operation["operationId"] in OPEN_OPERATIONS:
            continue
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        expected = {"401", "403", "429"}
        anthropic = operation["tags"] == ["anthropic"]
        if "requestBody" in operation:
            # Ollama and Anthropic answer a field error with 400, never 422.
            expected |= (
                {"400", "413"} if path.startswith("/ollama/api/") or anthropic else {"400", "422"}
            )
        if "{" in path:
            expected.add("404")
        if not path.startswith("/admin/"):
            expected |= {"502", "503", "504"}
        assert expected <= responses.keys(), (where, expected - responses.keys())
        envelope = "OllamaError" if path.startswith("/ollama/api/") else "ErrorEnvelope"
        if anthropic:
            envelope = "AnthropicError"
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                content = response["content"]["application/json"]
                assert content["schema"] == {"$ref": f"#/components/schemas/{envelope}"}, where
                assert content["examples"], (where, status)
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
        assert "WWW-Authenticate" in responses["401"]["headers"]


def test_bearer_auth_is_required_on_every_secured_operation_and_absent_on_open_ones(
    schema: dict[str, Any],
) -> None:
    assert schema["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API Key",
        "description": "An API key, sent as `Authorization: Bearer <key>`.",
    }
    assert "security" not in schema

    seen_open = set()
    for path, method, operation in operations(schema):
        security = operation.get("security")
        if operation["operationId"] in OPEN_OPERATIONS:
            seen_open.add(operation["operationId"])
            assert not security, path
        elif path.startswith("/admin/api-keys"):
            assert security == [{"BasicAuth": []}], path
        else:
            assert security == [{"BearerAuth": []}], f"{method} {path}"
    assert seen_open == OPEN_OPERATIONS
    # The docs themselves are not operations of the API.
    assert not {"/openapi.json", "/docs", "/redoc"} & schema["paths"].keys()


@pytest.mark.parametrize(
    ("path", "event"),
    [
        ("/v1/chat/completions", "ChatStreamEvent"),
        ("/openai/v1/chat/completions", "ChatCompletionChunk"),
        ("/openai/v1/completions", "CompletionChunk"),
    ],
)
def test_the_streamed_variant_is_documented_as_an_event_stream_with_its_event_schema(
    schema: dict[str, Any], path: str, event: str
) -> None:
    content = schema["paths"][path]["post"]["responses"]["200"]["content"]

    assert set(content) == {"application/json", "text/event-stream"}
    sse_event = deref(schema, content["text/event-stream"]["schema"])
    data = sse_event["properties"]["data"]
    payload, done = data["anyOf"]
    assert payload["contentMediaType"] == "application/json"
    assert {"$ref": f"#/components/schemas/{event}"} in payload["contentSchema"]["anyOf"]
    assert {"$ref": "#/components/schemas/ErrorEnvelope"} in payload["contentSchema"]["anyOf"]
    assert done["const"] == "[DONE]"
    assert "text/event-stream" in schema["paths"][path]["post"]["description"]


def test_every_example_is_valid_for_the_schema_it_illustrates(schema: dict[str, Any]) -> None:
    checked = 0
    for path, method, operation in operations(schema):
        media: list[tuple[str, dict[str, Any]]] = []
        if "requestBody" in operation:
            media.append(("request", operation["requestBody"]["content"]["application/json"]))
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                if media_type in ("application/json", "text/plain", "application/x-ndjson"):
                    media.append((status, content))
        for where, content in media:
            validator = validator_for(schema, content["schema"])
            for name, example in content.get("examples", {}).items():
                errors = [error.message for error in validator.iter_errors(example["value"])]
                assert not errors, (method, path, where, name, errors)
                checked += 1
    assert checked > 100


# --- servers, benchmark table -------------------------------------------------------


def test_the_served_schema_lists_the_serving_origin_first_then_the_configured_servers(
    http: httpx.Client, gateway: str
) -> None:
    servers = http.get("/openapi.json").json()["servers"]

    assert servers == [
        {"url": gateway, "description": "This server"},
        {"url": "http://localhost:8000"},
    ]


def test_the_schema_validates_without_a_warning_and_takes_servers_from_the_environment(
    tmp_path: Path,
) -> None:
    output = tmp_path / "openapi.yaml"
    env = {
        **os.environ,
        "API_SERVERS": "https://ai.example.test,http://gpu-box.local:8000",
        "BENCHMARK_RESULTS_FILE": str(tmp_path / "none.json"),
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn",
         "--file", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stderr and "Error" not in result.stderr, result.stderr
    document = yaml.safe_load(output.read_text())
    assert document["servers"] == [
        {"url": "https://ai.example.test"},
        {"url": "http://gpu-box.local:8000"},
    ]


def _chat_description(client) -> str:
    document = client.get("/openapi.json").json()
    return document["paths"]["/v1/chat/completions"]["post"]["description"]


def test_without_benchmark_results_the_chat_description_has_no_performance_table(
    client, settings, tmp_path: Path
) -> None:
    settings.BENCHMARK_RESULTS_FILE = tmp_path / "results.json"

    description = _chat_description(client)

    assert "Performance" not in description
    assert "tokens/s" not in description.lower()


def test_the_chat_description_carries_the_benchmark_results_the_bench_wrote(
    client, settings, tmp_path: Path
) -> None:
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "backend": "fake Ollama",
                "date": "2026-01-15",
                "results": [
                    {
                        "model": "qwen2.5:14b",
                        "endpoint": "chat-stream",
                        "concurrency": 10,
                        "requests_per_second": 123.456,
                        "latency_p50_ms": 81.25,
                        "latency_p95_ms": 140.5,
                    }
                ],
            }
        )
    )
    settings.BENCHMARK_RESULTS_FILE = results

    description = _chat_description(client)

    assert "### Performance" in description
    assert "(fake Ollama, 2026-01-15)" in description
    assert "| qwen2.5:14b | chat-stream | 10 | 123.5 | 81.2 | 140.5 |" in description
