"""The Django admin as the operator's cockpit, through the real admin pages.

create → copy once → use → revoke; the raw key appears exactly once, on the
page that answers the creating POST, and nowhere after: not in the database,
the session, a cookie, the log or any admin page.
"""

from __future__ import annotations

import io
import logging
import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from keys.models import ApiKey, UsageRecord
from keys.services import api_key_create, api_key_revoke
from tests.fake_ollama import FakeOllama

KEY_RE = re.compile(r"lai_[0-9A-Za-z]{8}_[0-9A-Za-z]{44}")
ADD_URL = "/admin/keys/apikey/add/"
LIST_URL = "/admin/keys/apikey/"

pytestmark = pytest.mark.django_db


def create_through_admin(client: Client, **fields: object) -> tuple[ApiKey, str, object]:
    # What the browser sends: the form's initial priority comes along.
    data = {"name": "laptop", "expires_at_0": "", "expires_at_1": "", "priority": "1", **fields}
    response = client.post(ADD_URL, data)
    assert response.status_code == 200, response.content[:2000]
    raw_keys = set(KEY_RE.findall(response.content.decode()))
    assert len(raw_keys) == 1
    raw_key = raw_keys.pop()
    api_key = ApiKey.objects.get(prefix=raw_key.split("_")[1])
    return api_key, raw_key, response


def dump_everything() -> str:
    """Every row of every table, as the database holds it."""
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    with connection.cursor() as cursor:
        cursor.execute("SELECT session_data FROM django_session")
        sessions = [row[0] for row in cursor.fetchall()]
    return out.getvalue() + "\n".join(sessions)


def test_create_copy_once_use_revoke(
    admin_client: Client, client: Client, fake_ollama: FakeOllama, caplog
) -> None:
    caplog.set_level(logging.DEBUG)

    # Create: the answer to the POST shows the raw key once, and is not cached.
    api_key, raw_key, created = create_through_admin(admin_client, rate_limit="30")
    assert "no-store" in created["Cache-Control"]
    assert "will only appear once" in created.content.decode()
    assert api_key.rate_limit == 30 and api_key.status == "active"

    # Use it.
    used = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert used.status_code == 200

    # After the creation page: nowhere. Not in the DB, the session, the cookies,
    # the logs, nor any admin page (list, change, history, usage, search).
    secret = raw_key.split("_", 2)[2]
    key_pages = [
        admin_client.get(LIST_URL),
        admin_client.get(f"{LIST_URL}{api_key.pk}/change/"),
        admin_client.get(f"{LIST_URL}{api_key.pk}/history/"),
        admin_client.get(f"{LIST_URL}{api_key.pk}/usage/"),
        admin_client.get(LIST_URL, {"q": api_key.prefix}),
    ]
    other_pages = [admin_client.get("/admin/keys/usagerecord/"), admin_client.get("/admin/")]
    for page in key_pages + other_pages:
        assert page.status_code == 200
        assert secret not in page.content.decode()
    for page in key_pages:  # they do name the key, by its prefix
        assert api_key.prefix in page.content.decode()
    assert secret not in dump_everything()
    assert all(secret not in morsel.value for morsel in admin_client.cookies.values())
    assert secret not in caplog.text

    # Revoke with the list action: refused from the next request on.
    revoked = admin_client.post(
        LIST_URL, {"action": "revoke_selected", "_selected_action": [api_key.pk]}, follow=True
    )
    assert "Revoked 1 API key" in revoked.content.decode()
    after = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert after.status_code == 401
    assert "revoked" in after.json()["error"]["message"]

    # History through the admin's own change log.
    history = list(LogEntry.objects.filter(object_id=str(api_key.pk)).order_by("action_time", "pk"))
    assert [entry.get_change_message() for entry in history] == ["Added.", "Revoked."]
    history_page = admin_client.get(f"{LIST_URL}{api_key.pk}/history/").content.decode()
    assert "Revoked." in history_page


def test_the_list_shows_prefix_name_owner_status_limit_usage_last_used(
    admin_client: Client,
) -> None:
    owner = get_user_model().objects.create_user("ana")
    active, _ = api_key_create(name="active one", owner=owner, rate_limit=42)
    revoked, _ = api_key_create(name="revoked one")
    api_key_create(name="expired one", expires_at=timezone.now() - timedelta(days=1))
    ApiKey.objects.filter(pk=active.pk).update(usage_count=1234, last_used_at=timezone.now())
    api_key_revoke(api_key=revoked)

    page = admin_client.get(LIST_URL).content.decode()

    for label in ("key", "name", "owner", "status", "limit / min", "usage", "last used"):
        assert label.lower() in page.lower()
    assert f"lai_{active.prefix}_…" in page and "ana" in page and "42 req" in page
    assert "1234" in page
    assert re.search(r">active<", page) and re.search(r">revoked<", page)
    assert re.search(r">expired<", page)

    only_revoked = admin_client.get(LIST_URL, {"status": "revoked"}).content.decode()
    assert "revoked one" in only_revoked and "active one" not in only_revoked
    only_expired = admin_client.get(LIST_URL, {"status": "expired"}).content.decode()
    assert "expired one" in only_expired and "active one" not in only_expired
    only_active = admin_client.get(LIST_URL, {"status": "active"}).content.decode()
    assert "active one" in only_active and "expired one" not in only_active


def test_searching_finds_by_name_owner_and_prefix(admin_client: Client) -> None:
    owner = get_user_model().objects.create_user("bruno")
    target, _ = api_key_create(name="ci pipeline", owner=owner)
    api_key_create(name="other")

    for term in ("pipeline", "bruno", target.prefix):
        page = admin_client.get(LIST_URL, {"q": term}).content.decode()
        assert "ci pipeline" in page, term
        assert ">other<" not in page, term


def test_a_pasted_whole_key_is_found_through_a_post_and_never_in_a_url(
    admin_client: Client,
) -> None:
    target, raw_key = api_key_create(name="ci pipeline")
    secret = raw_key.split("_", 2)[2]

    listing = admin_client.get(LIST_URL).content.decode()
    form = admin_client.get(f"{LIST_URL}find/")
    found = admin_client.post(f"{LIST_URL}find/", {"key": raw_key})
    other_last = "y" if raw_key.endswith("x") else "x"  # a key that does not exist
    missing = admin_client.post(f"{LIST_URL}find/", {"key": raw_key[:-1] + other_last})

    assert f'href="{LIST_URL}find/"' in listing  # linked from the list
    assert 'method="post"' in form.content.decode()
    assert found.status_code == 302
    assert found["Location"] == f"{LIST_URL}{target.pk}/change/"
    assert secret not in found["Location"]
    assert "No key matches" in missing.content.decode()
    # The GET search no longer invites a whole key (it would be logged).
    assert "paste a whole key" not in listing


def test_the_extend_expiry_action_extends_and_logs(admin_client: Client) -> None:
    expires = timezone.now() + timedelta(days=2)
    api_key, _ = api_key_create(name="soon", expires_at=expires)
    never, _ = api_key_create(name="never")

    answer = admin_client.post(
        LIST_URL,
        {"action": "extend_expiry", "_selected_action": [api_key.pk, never.pk]},
        follow=True,
    )

    api_key.refresh_from_db()
    never.refresh_from_db()
    assert api_key.expires_at == expires + timedelta(days=30)
    assert never.expires_at is None
    assert "Extended 1 API key(s) (1 skipped" in answer.content.decode()
    assert LogEntry.objects.filter(
        object_id=str(api_key.pk), change_message__startswith="Extended expiry"
    ).exists()


def test_revoking_from_the_change_page_asks_then_revokes(admin_client: Client) -> None:
    api_key, _ = api_key_create(name="one")
    change = admin_client.get(f"{LIST_URL}{api_key.pk}/change/").content.decode()
    revoke_url = reverse("admin:keys_apikey_revoke", args=[api_key.pk])
    assert revoke_url in change

    confirm = admin_client.get(revoke_url)
    done = admin_client.post(revoke_url, follow=True)

    assert "Revocation is final" in confirm.content.decode()
    assert done.status_code == 200
    api_key.refresh_from_db()
    assert api_key.status == "revoked"
    # A revoked key is a record: its change page has no editable fields left.
    page = admin_client.get(f"{LIST_URL}{api_key.pk}/change/").content.decode()
    assert 'name="name"' not in page and revoke_url not in page


def test_the_add_form_sets_allow_lists_and_refuses_a_past_expiry(admin_client: Client) -> None:
    api_key, _, _ = create_through_admin(
        admin_client,
        allowed_endpoints=["chat", "embeddings"],
        allowed_models="qwen2.5:14b\nllama3.2",
        tokens_per_minute="5000",
    )
    assert api_key.allowed_endpoints == ["chat", "embeddings"]
    assert api_key.allowed_models == ["llama3.2:latest", "qwen2.5:14b"]
    assert api_key.tokens_per_minute == 5000

    past = timezone.now() - timedelta(days=1)
    refused = admin_client.post(
        ADD_URL,
        {"name": "late", "expires_at_0": past.strftime("%Y-%m-%d"), "expires_at_1": "10:00:00"},
    )
    assert refused.status_code == 200
    assert "must expire in the future" in refused.content.decode()
    assert not ApiKey.objects.filter(name="late").exists()


def test_the_usage_page_shows_requests_and_tokens_per_day_and_model_and_last_errors(
    admin_client: Client, client: Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["a", " b"]
    api_key, raw_key = api_key_create(name="busy key")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}
    body = {"model": "qwen2.5:14b", "messages": [{"role": "user", "content": "Hi"}]}
    for _ in range(3):
        assert (
            client.post("/v1/chat/completions", body, "application/json", **auth).status_code == 200
        )
    client.post("/v1/embeddings", {"input": "x y"}, "application/json", **auth)
    client.get("/v1/models/no-such:1b", **auth)

    page = admin_client.get(f"{LIST_URL}{api_key.pk}/usage/")

    assert page.status_code == 200
    totals = page.context["totals"]
    records = UsageRecord.objects.filter(api_key=api_key)
    assert totals["requests"] == 5 == records.count()
    assert totals["errors"] == 1
    assert totals["completion_tokens"] == 6
    rows = {
        (row["model"], row["requests"], row["completion_tokens"])
        for row in page.context["by_day_model"]
    }
    assert ("qwen2.5:14b", 3, 6) in rows
    assert ("mxbai-embed-large", 1, 0) in rows
    html = page.content.decode()
    assert "model_not_found" in html and "/v1/models/no-such:1b" in html
    assert "qwen2.5:14b" in html


def test_only_staff_reach_the_admin(client: Client) -> None:
    get_user_model().objects.create_user("eve", password="pw-for-eve-1")
    client.force_login(get_user_model().objects.get(username="eve"))

    answer = client.get(LIST_URL)

    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
