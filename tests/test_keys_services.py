"""The keys service: creation, authentication, authorization, revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from gateway.errors import AuthenticationError, PermissionDeniedError
from keys.models import ApiKey, ApiKeyStatus
from keys.policy import Caller, caller_authorize
from keys.services import (
    _checksum,
    api_key_authenticate,
    api_key_create,
    api_key_extend,
    api_key_parse,
    api_key_revoke,
)

pytestmark = pytest.mark.django_db


def test_it_returns_the_raw_key_once_and_stores_only_prefix_and_hash() -> None:
    api_key, raw_key = api_key_create(name="ci")

    assert raw_key.startswith(f"lai_{api_key.prefix}_")
    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert raw_key not in repr(stored)
    secret = raw_key.split("_", 2)[2]
    assert all(secret not in str(value) for value in stored.values())
    assert len(stored["hashed_key"]) == 64


def test_it_authenticates_a_fresh_key() -> None:
    api_key, raw_key = api_key_create(name="ci")

    assert api_key_authenticate(raw_key=raw_key).pk == api_key.pk


@pytest.mark.parametrize("raw_key", [None, "", "nonsense", "Bearer x", "lai_short_key"])
def test_it_refuses_missing_and_malformed_keys(raw_key: str | None) -> None:
    with pytest.raises(AuthenticationError) as caught:
        api_key_authenticate(raw_key=raw_key)
    assert caught.value.status == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_a_typo_by_checksum_without_a_query(django_assert_num_queries) -> None:
    _, raw_key = api_key_create(name="ci")
    typo = raw_key[:-8] + ("A" if raw_key[-8] != "A" else "B") + raw_key[-7:]

    assert api_key_parse(typo) is None
    with django_assert_num_queries(0), pytest.raises(AuthenticationError):
        api_key_authenticate(raw_key=typo)


def test_it_refuses_a_well_formed_key_with_a_wrong_secret() -> None:
    api_key, _ = api_key_create(name="ci")
    # The real key's prefix, another secret, a valid checksum.
    body = f"lai_{api_key.prefix}_" + "x" * 38
    forged = body + _checksum(body)
    assert api_key_parse(forged) == api_key.prefix

    with pytest.raises(AuthenticationError, match="Invalid API key"):
        api_key_authenticate(raw_key=forged)


def test_it_refuses_a_revoked_key_and_revocation_is_final() -> None:
    api_key, raw_key = api_key_create(name="ci")

    api_key_revoke(api_key=api_key)

    with pytest.raises(AuthenticationError, match="revoked"):
        api_key_authenticate(raw_key=raw_key)
    api_key.refresh_from_db()
    assert api_key.status == ApiKeyStatus.REVOKED
    assert not api_key_extend(api_key=api_key, days=30)


def test_it_refuses_an_expired_key() -> None:
    _, raw_key = api_key_create(name="ci", expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(AuthenticationError, match="expired"):
        api_key_authenticate(raw_key=raw_key)


def test_extending_an_expired_key_makes_it_work_again() -> None:
    api_key, raw_key = api_key_create(name="ci", expires_at=timezone.now() - timedelta(days=1))

    assert api_key_extend(api_key=api_key, days=30)

    assert api_key_authenticate(raw_key=raw_key).expires_at > timezone.now() + timedelta(days=29)


def test_it_refuses_the_key_of_a_deactivated_owner() -> None:
    owner = get_user_model().objects.create_user("ana", password="x")
    _, raw_key = api_key_create(name="ci", owner=owner)
    owner.is_active = False
    owner.save()

    with pytest.raises(AuthenticationError, match="owner"):
        api_key_authenticate(raw_key=raw_key)


def test_it_authenticates_with_one_query(django_assert_num_queries) -> None:
    owner = get_user_model().objects.create_user("ana", password="x")
    _, raw_key = api_key_create(name="ci", owner=owner)

    with django_assert_num_queries(1):
        api_key = api_key_authenticate(raw_key=raw_key)
        assert api_key.owner.username == "ana"


def test_it_authorizes_endpoint_groups_and_models_by_allow_list() -> None:
    api_key, _ = api_key_create(
        name="ci", allowed_endpoints=["chat"], allowed_models=["qwen2.5:14b", "llama3.2"]
    )

    caller_authorize(caller=Caller(api_key=api_key), endpoint_group="chat", model="qwen2.5:14b")
    caller_authorize(caller=Caller(api_key=api_key), endpoint_group="chat", model="LLaMA3.2:latest")
    with pytest.raises(PermissionDeniedError) as endpoint:
        caller_authorize(caller=Caller(api_key=api_key), endpoint_group="embeddings")
    with pytest.raises(PermissionDeniedError) as model:
        caller_authorize(caller=Caller(api_key=api_key), endpoint_group="chat", model="mistral")
    assert (endpoint.value.status, endpoint.value.code) == (403, "endpoint_not_allowed")
    assert (model.value.status, model.value.code) == (403, "model_not_allowed")


def test_empty_allow_lists_allow_everything() -> None:
    api_key, _ = api_key_create(name="ci")

    for group in ("models", "chat", "embeddings"):
        caller_authorize(caller=Caller(api_key=api_key), endpoint_group=group, model="anything:7b")


def test_an_empty_allow_list_does_not_grant_model_management() -> None:
    everything, _ = api_key_create(name="ci")
    admin, _ = api_key_create(name="ops", allowed_endpoints=["models", "ollama_admin"])

    with pytest.raises(PermissionDeniedError) as refused:
        caller_authorize(caller=Caller(api_key=everything), endpoint_group="ollama_admin")
    caller_authorize(caller=Caller(api_key=admin), endpoint_group="ollama_admin")
    assert refused.value.code == "endpoint_not_allowed"
    assert "ollama_admin" in refused.value.message


def test_it_refuses_unknown_endpoint_groups_at_creation() -> None:
    with pytest.raises(ValueError, match="Unknown endpoint group"):
        api_key_create(name="ci", allowed_endpoints=["/v1/chat"])
