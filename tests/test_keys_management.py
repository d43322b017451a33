"""Other ways to create and revoke keys: the management commands and the
staff-only key-management API (`/admin/api-keys`), over a real socket."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from keys.models import ApiKey
from keys.services import api_key_authenticate
from tests.fake_ollama import FakeOllama

KEY_RE = re.compile(r"lai_[0-9A-Za-z]{8}_[0-9A-Za-z]{44}")
ROOT = Path(__file__).resolve().parent.parent


# --- management commands ----------------------------------------------------------


@pytest.mark.django_db
def test_create_api_key_prints_the_raw_key_alone_on_the_last_line() -> None:
    out = io.StringIO()

    call_command(
        "create_api_key",
        "ci",
        "--expires-days",
        "7",
        "--rate-limit",
        "5",
        "--tokens-per-minute",
        "1000",
        "--endpoints",
        "chat",
        "embeddings",
        "--models",
        "qwen2.5:14b",
        stdout=out,
    )

    last_line = out.getvalue().rstrip("\n").splitlines()[-1]
    assert KEY_RE.fullmatch(last_line)
    api_key = api_key_authenticate(raw_key=last_line)
    assert api_key.name == "ci"
    assert api_key.rate_limit == 5 and api_key.tokens_per_minute == 1000
    assert api_key.allowed_endpoints == ["chat", "embeddings"]
    assert api_key.allowed_models == ["qwen2.5:14b"]
    assert timedelta(days=6, hours=23) < api_key.expires_at - timezone.now() <= timedelta(days=7)
    assert out.getvalue().count(last_line) == 1


def test_create_api_key_works_for_scripts_capturing_the_last_line(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",
    }
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)

    shell = f'KEY=$({python} manage.py create_api_key script | tail -n 1) && echo "[$KEY]"'
    done = subprocess.run(
        ["sh", "-c", shell], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )

    assert re.fullmatch(r"\[lai_[0-9A-Za-z]{8}_[0-9A-Za-z]{44}\]\n", done.stdout)


@pytest.mark.django_db
def test_create_api_key_refuses_unknown_endpoint_groups_and_owners() -> None:
    with pytest.raises(CommandError):
        call_command("create_api_key", "x", "--endpoints", "everything", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_key", "x", "--owner", "nobody", stdout=io.StringIO())
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("given", ["prefix", "whole key"])
def test_revoke_api_key_takes_the_prefix_or_the_whole_key(given: str) -> None:
    out = io.StringIO()
    call_command("create_api_key", "doomed", stdout=out)
    raw_key = out.getvalue().splitlines()[-1]
    prefix = raw_key.split("_")[1]

    call_command("revoke_api_key", prefix if given == "prefix" else raw_key, stdout=io.StringIO())

    assert ApiKey.objects.get(prefix=prefix).status == "revoked"


# --- the key-management API ------------------------------------------------------------


@pytest.fixture
def fast_passwords(settings) -> None:
    # Basic auth hashes the password on every request; the default hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff(transactional_db, fast_passwords) -> tuple[str, str]:
    get_user_model().objects.create_user("op", password="op-password-1", is_staff=True)
    return ("op", "op-password-1")


@pytest.fixture
def nobody(transactional_db, fast_passwords) -> tuple[str, str]:
    get_user_model().objects.create_user("eve", password="eve-password-1")
    return ("eve", "eve-password-1")


def test_staff_create_a_key_that_works_at_once_and_revoke_it(
    http: httpx.Client, staff: tuple[str, str], fake_ollama: FakeOllama
) -> None:
    created = http.post(
        "/admin/api-keys",
        auth=staff,
        json={"name": "from a script", "rate_limit": 10, "expires_days": 30},
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["note"] == "This key will only appear once"
    raw_key = body["api_key"]
    assert KEY_RE.fullmatch(raw_key)
    assert body["prefix"] == raw_key.split("_")[1]
    assert (body["name"], body["rate_limit"], body["status"]) == ("from a script", 10, "active")
    assert "no-store" in created.headers["Cache-Control"]
    auth = {"Authorization": f"Bearer {raw_key}"}
    assert http.get("/v1/models", headers=auth).status_code == 200

    listed = http.get("/admin/api-keys", auth=staff).json()
    assert [key["prefix"] for key in listed] == [body["prefix"]]
    assert raw_key not in http.get("/admin/api-keys", auth=staff).text

    revoked = http.post(f"/admin/api-keys/{body['prefix']}/revoke", auth=staff)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert http.get("/v1/models", headers=auth).status_code == 401

    messages = set(LogEntry.objects.values_list("change_message", flat=True))
    assert {
        "Created through the key-management API.",
        "Revoked through the key-management API.",
    } <= messages


def test_delete_is_not_how_a_key_is_revoked(http: httpx.Client, staff: tuple[str, str]) -> None:
    # A revoked key stays readable for audit, so DELETE (which promises the
    # resource is gone) is not offered: revoking is POST .../revoke.
    prefix = http.post("/admin/api-keys", auth=staff, json={"name": "x"}).json()["prefix"]

    answer = http.delete(f"/admin/api-keys/{prefix}", auth=staff)

    assert answer.status_code == 405
    assert "DELETE" not in answer.headers["Allow"]
    assert ApiKey.objects.get(prefix=prefix).status == "active"


def test_without_credentials_the_api_answers_401_in_the_envelope(http: httpx.Client) -> None:
    for answer in (
        http.post("/admin/api-keys", json={"name": "x"}),
        http.post("/admin/api-keys", json={"name": "x"}, auth=("op", "wrong")),
        http.post("/admin/api-keys/abcdefgh/revoke"),
    ):
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"].startswith("Basic")
        assert answer.json()["error"]["type"] == "authentication_error"
    assert not ApiKey.objects.exists()


def test_a_browser_script_gets_a_challenge_its_browser_does_not_prompt_for(
    http: httpx.Client,
) -> None:
    # Browsers mark a page's fetch() with Sec-Fetch-Dest: empty; a Basic
    # challenge there would pop the browser's password dialog over /docs.
    answer = http.get("/admin/api-keys", headers={"Sec-Fetch-Dest": "empty"})

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'StaffBasic realm="admin"'
    assert answer.json()["error"]["code"] == "not_authenticated"
    # curl and scripts still get Basic (above), and a page navigation too.
    navigation = http.get("/admin/api-keys", headers={"Sec-Fetch-Dest": "document"})
    assert navigation.headers["WWW-Authenticate"] == 'Basic realm="admin"'


def test_a_non_staff_user_gets_403(http: httpx.Client, nobody: tuple[str, str]) -> None:
    answer = http.post("/admin/api-keys", auth=nobody, json={"name": "x"})

    assert answer.status_code == 403
    assert answer.json()["error"]["type"] == "permission_error"
    assert not ApiKey.objects.exists()


def test_an_api_key_is_not_a_staff_credential(
    http: httpx.Client, staff: tuple[str, str], auth_headers: dict
) -> None:
    answer = http.post("/admin/api-keys", headers=auth_headers, json={"name": "x"})

    assert answer.status_code == 401
    assert ApiKey.objects.count() == 1  # the fixture's own key


def test_a_staff_session_works_with_its_csrf_token(staff: tuple[str, str]) -> None:
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(get_user_model().objects.get(username=staff[0]))

    without_token = browser.post("/admin/api-keys", {"name": "x"}, "application/json")
    browser.get("/admin/")  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    with_token = browser.post(
        "/admin/api-keys", {"name": "x"}, "application/json", HTTP_X_CSRFTOKEN=token
    )

    assert without_token.status_code == 403
    assert with_token.status_code == 201
    assert ApiKey.objects.count() == 1


def test_invalid_bodies_get_422_naming_the_field(
    http: httpx.Client, staff: tuple[str, str]
) -> None:
    answer = http.post(
        "/admin/api-keys", auth=staff, json={"name": "x", "allowed_endpoints": ["everything"]}
    )

    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["loc"].startswith("allowed_endpoints")
