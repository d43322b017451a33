"""Password lockout on every password entry point (django-axes, keys/lockout.py).

Wrong passwords from one address, then the right one within the window: the
right one is refused too, on the admin's login, the chat page's login and the
key-management API's basic auth, and no password is hashed while locked.
"""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher
from django.test import Client

LIMIT = 3
RIGHT = "the-right-passphrase-1"


class CountingHasher(MD5PasswordHasher):
    """A fast hasher that counts the passwords it checks."""

    checked = 0

    def verify(self, password: str, encoded: str) -> bool:
        CountingHasher.checked += 1
        return super().verify(password, encoded)


@pytest.fixture
def staff(db, settings) -> str:
    settings.PASSWORD_HASHERS = ["tests.test_login_lockout.CountingHasher"]
    settings.AXES_FAILURE_LIMIT = LIMIT
    get_user_model().objects.create_user("ops", password=RIGHT, is_staff=True, is_superuser=True)
    CountingHasher.checked = 0
    return "ops"


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _form_status(status: int) -> int:
    """A login form's answer as the API's: 302 signed in (200), 200 the form again (401)."""
    return {302: 200, 200: 401}.get(status, status)


def admin_login(client: Client, username: str, password: str) -> int:
    answer = client.post("/admin/login/", {"username": username, "password": password})
    return _form_status(answer.status_code)


def page_login(client: Client, username: str, password: str) -> int:
    answer = client.post("/accounts/login/", {"username": username, "password": password})
    return _form_status(answer.status_code)


def api_login(client: Client, username: str, password: str) -> int:
    answer = client.get("/admin/api-keys", HTTP_AUTHORIZATION=_basic(username, password))
    return answer.status_code


ENTRY_POINTS = [admin_login, page_login, api_login]


@pytest.mark.parametrize("sign_in", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_the_right_password_is_refused_after_wrong_ones_from_the_same_address(
    staff: str, sign_in
) -> None:
    client = Client(REMOTE_ADDR="203.0.113.7")
    wrong = [sign_in(client, staff, f"guess-{n}") for n in range(LIMIT)]
    checked_before_lockout = CountingHasher.checked

    right = sign_in(client, staff, RIGHT)
    other_user = sign_in(client, "someone-else", "whatever")

    assert wrong[:-1] == [401] * (LIMIT - 1)  # the last failure locks (answered 429)
    assert right == 429
    assert other_user == 429  # locked per address: every username from it
    assert CountingHasher.checked == checked_before_lockout  # refused before hashing
    # Another address may still sign in as long as the username is not locked.
    assert sign_in(Client(REMOTE_ADDR="198.51.100.1"), staff, RIGHT) == 429  # the username is
    assert get_user_model().objects.create_user("ann", password=RIGHT, is_staff=True)
    assert sign_in(Client(REMOTE_ADDR="198.51.100.1"), "ann", RIGHT) == 200


@pytest.mark.parametrize("sign_in", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_a_username_guessed_from_many_addresses_is_locked_everywhere(staff: str, sign_in) -> None:
    for n in range(LIMIT):
        sign_in(Client(REMOTE_ADDR=f"192.0.2.{n + 1}"), staff, f"guess-{n}")

    assert sign_in(Client(REMOTE_ADDR="192.0.2.200"), staff, RIGHT) == 429


def test_the_key_api_answers_a_locked_out_attempt_in_its_envelope(staff: str, settings) -> None:
    client = Client(REMOTE_ADDR="203.0.113.8")
    for n in range(LIMIT):
        api_login(client, staff, f"guess-{n}")

    answer = client.get("/admin/api-keys", HTTP_AUTHORIZATION=_basic(staff, RIGHT))

    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "login_locked_out"
    assert int(answer["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())


@pytest.mark.parametrize("sign_in", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_a_right_password_below_the_limit_signs_in(staff: str, sign_in) -> None:
    client = Client(REMOTE_ADDR="203.0.113.9")
    for n in range(LIMIT - 1):
        sign_in(client, staff, f"guess-{n}")

    assert sign_in(client, staff, RIGHT) == 200
