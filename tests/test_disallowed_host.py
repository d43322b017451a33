"""A Host not in ALLOWED_HOSTS is refused in the API's error shape, not Django's HTML page."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_an_api_request_to_a_disallowed_host_gets_the_envelope(client: Client) -> None:
    answer = client.get("/v1/models", HTTP_HOST="evil.example")

    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == "disallowed_host"
    assert error["type"] == "invalid_request_error"
    assert "ALLOWED_HOSTS" in error["message"]


def test_the_ollama_surface_answers_in_ollamas_shape(client: Client) -> None:
    answer = client.post("/ollama/api/chat", {}, "application/json", HTTP_HOST="evil.example")

    assert answer.status_code == 400
    assert "ALLOWED_HOSTS" in answer.json()["error"]


def test_the_admin_keeps_its_html_page(client: Client) -> None:
    answer = client.get("/admin/login/", HTTP_HOST="evil.example")

    assert answer.status_code == 400
    assert answer["Content-Type"].startswith("text/html")
