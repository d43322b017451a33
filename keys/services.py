"""The life of an API key: create, issue, authenticate, revoke, extend.

What a key may do, how much it has left and what it used is the policy's
(`keys.policy`), which every surface calls; the admin, the management
commands and the key-management API call these functions.

A key reads `lai_<prefix>_<secret><checksum>`: an 8-character lookup prefix
(stored, unique, shown in the admin and logs), a 38-character random secret
(226 bits) and a 6-character CRC-32 checksum, all base62. The checksum lets
typos and garbage be refused without a database query; the database keeps
the prefix and a SHA-256 hash of the whole key, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from gateway.backends.base import normalize_model_name
from gateway.errors import AuthenticationError
from keys import keycache
from keys.models import ENDPOINT_GROUP_NAMES, ApiKey

__all__ = [
    "api_key_authenticate",
    "api_key_create",
    "api_key_extend",
    "api_key_issue",
    "api_key_parse",
    "api_key_revoke",
]

KEY_PRODUCT_PREFIX = "lai"
_ALPHABET = string.digits + string.ascii_letters
_PREFIX_LENGTH = 8
_SECRET_LENGTH = 38
_CHECKSUM_LENGTH = 6
_KEY_RE = re.compile(
    rf"{KEY_PRODUCT_PREFIX}_([0-9A-Za-z]{{{_PREFIX_LENGTH}}})_"
    rf"([0-9A-Za-z]{{{_SECRET_LENGTH}}})([0-9A-Za-z]{{{_CHECKSUM_LENGTH}}})"
)


# --- key material -------------------------------------------------------------


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode())
    digits = []
    for _ in range(_CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _new_key() -> tuple[str, str]:
    """A fresh (prefix, raw key)."""
    prefix = _random_base62(_PREFIX_LENGTH)
    body = f"{KEY_PRODUCT_PREFIX}_{prefix}_{_random_base62(_SECRET_LENGTH)}"
    return prefix, body + _checksum(body)


def api_key_parse(raw_key: str) -> str | None:
    """The lookup prefix of a well-formed key with a valid checksum, else None."""
    match = _KEY_RE.fullmatch(raw_key)
    if match is None:
        return None
    body = raw_key[:-_CHECKSUM_LENGTH]
    if not hmac.compare_digest(_checksum(body), match.group(3)):
        return None
    return match.group(1)


# --- create, revoke, extend ---------------------------------------------------


def _clean_endpoints(endpoints: Iterable[str]) -> list[str]:
    cleaned = sorted({endpoint.strip() for endpoint in endpoints if endpoint.strip()})
    unknown = [endpoint for endpoint in cleaned if endpoint not in ENDPOINT_GROUP_NAMES]
    if unknown:
        raise ValueError(
            f"Unknown endpoint group(s): {', '.join(unknown)}. "
            f"Known: {', '.join(sorted(ENDPOINT_GROUP_NAMES))}."
        )
    return cleaned


def _clean_models(models: Iterable[str]) -> list[str]:
    return sorted({normalize_model_name(model) for model in models if model.strip()})


def api_key_issue(*, api_key: ApiKey) -> str:
    """Give an unsaved key its prefix and hash, save it, return the raw key.

    The raw key is returned once and stored nowhere. A prefix collision (one
    in 62^8 per pair) is retried with a new key.
    """
    api_key.allowed_endpoints = _clean_endpoints(api_key.allowed_endpoints or ())
    api_key.allowed_models = _clean_models(api_key.allowed_models or ())
    for _ in range(5):
        prefix, raw_key = _new_key()
        api_key.prefix, api_key.hashed_key = prefix, _hash(raw_key)
        try:
            with transaction.atomic():
                api_key.save(force_insert=True)
        except IntegrityError:
            if ApiKey.objects.filter(prefix=prefix).exists():
                continue
            raise
        return raw_key
    raise RuntimeError("Could not find a free key prefix after 5 tries")


def api_key_create(
    *,
    name: str,
    owner: Any = None,
    expires_at: datetime | None = None,
    rate_limit: int | None = None,
    tokens_per_minute: int | None = None,
    allowed_endpoints: Iterable[str] = (),
    allowed_models: Iterable[str] = (),
) -> tuple[ApiKey, str]:
    """Create a key; returns `(api_key, raw_key)`. Show the raw key once, keep it nowhere.

    `allowed_endpoints` are endpoint groups (`models`, `chat`, `embeddings`;
    empty = all, unknown names raise ValueError); `allowed_models` are model
    names (empty = all). `rate_limit` is requests per minute per endpoint
    group (None = the defaults).
    """
    api_key = ApiKey(
        name=name,
        owner=owner,
        expires_at=expires_at,
        rate_limit=rate_limit,
        tokens_per_minute=tokens_per_minute,
        allowed_endpoints=list(allowed_endpoints),
        allowed_models=list(allowed_models),
    )
    raw_key = api_key_issue(api_key=api_key)
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke a key for good; every worker refuses it from its next request on."""
    now = timezone.now()
    ApiKey.objects.filter(pk=api_key.pk, is_active=True).update(is_active=False, revoked_at=now)
    if api_key.is_active:
        api_key.is_active, api_key.revoked_at = False, now


def api_key_extend(*, api_key: ApiKey, days: int) -> bool:
    """Push a key's expiry `days` past max(now, current expiry).

    Keys without expiry stay without; revoked keys stay revoked. Returns
    whether the key changed.
    """
    if not api_key.is_active or api_key.expires_at is None:
        return False
    api_key.expires_at = max(api_key.expires_at, timezone.now()) + timedelta(days=days)
    ApiKey.objects.filter(pk=api_key.pk, is_active=True).update(expires_at=api_key.expires_at)
    return True


# --- authenticate, authorize ----------------------------------------------------


def api_key_authenticate(*, raw_key: str | None) -> ApiKey:
    """The key for `raw_key`, or AuthenticationError (missing, unknown, revoked, expired).

    Malformed keys fail without touching the database. A key this process
    looked up since the last change to any key (`keys.keycache`) is checked
    without a query; otherwise one indexed query (the owner joined in). Any
    change to a key replaces the shared keys generation, so a revocation
    takes effect on every worker at once. Expiry, revocation and the owner
    are checked on every call, the hash compared in constant time.
    """
    if not raw_key:
        raise AuthenticationError("Missing API key. Send it as 'Authorization: Bearer <key>'.")
    prefix = api_key_parse(raw_key)
    if prefix is None:
        raise AuthenticationError("Invalid API key.")
    # Read the generation BEFORE the row: a row read meanwhile is kept under
    # a generation that a change committed meanwhile has already replaced.
    generation = keycache.generation()
    api_key = keycache.lookup(prefix, generation) if generation is not None else None
    if api_key is None:
        try:
            api_key = ApiKey.objects.select_related("owner").get(prefix=prefix)
        except ApiKey.DoesNotExist:
            raise AuthenticationError("Invalid API key.") from None
        if generation is not None:
            keycache.remember(prefix, generation, api_key)
    if not hmac.compare_digest(api_key.hashed_key, _hash(raw_key)):
        raise AuthenticationError("Invalid API key.")
    if not api_key.is_active:
        raise KeyNotUsableError("This API key has been revoked.")
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        raise KeyNotUsableError("This API key has expired.")
    if api_key.owner is not None and not api_key.owner.is_active:
        raise KeyNotUsableError("The owner of this API key is deactivated.")
    return api_key


class KeyNotUsableError(AuthenticationError):
    """A real key (its whole secret matched) that may not be used: revoked, expired, owner off."""
