"""Authenticated keys kept in the process while no key has changed anywhere.

Looking a key up costs one ORM query (and, from async code, a thread
switch) on every request. This module keeps the rows it looked up, by
lookup prefix, each stamped with the *keys generation* it was read under:
a random token in a store every process serving the same database shares.
Any change to any key (or to a user, who may own keys) replaces the token,
so every process drops all it kept and reads again from its next request
on. Revocation, expiry changes and allow-list changes therefore apply at
once on every worker, as without the cache.

The store of the token, decided by the settings:

- SQLite in a file: a small file beside the database (`<db>-keygen`). Every
  process that opens that database file shares its folder, and SQLite
  already needs that folder writable (its `-wal` and `-shm` files live
  there). Reading it is one `stat()`, no database, no network. Do not
  delete it while servers run (as with the `-wal` file).
- any other database with a shared cache (`REDIS_URL`): a key in that cache.
- in-memory SQLite: a counter in this process (no other process can open
  that database).
- otherwise (PostgreSQL with the local-memory cache): no shared store, so
  nothing is kept: every request looks its key up, as before.

Who replaces the token: `post_save` / `post_delete` of keys and users
(`keys.signals`), and `ApiKeyQuerySet.update()` (every bulk path: admin
actions, `api_key_revoke`, `api_key_extend`, management commands, the staff
API). The usage flusher's counter updates (`usage_count`, `last_used_at`)
do not: they are not kept here (those fields are left deferred on a kept
key, so reading one fetches the current value). The token is replaced
before the write and again after its transaction commits, so no process can
keep a row read before the commit under the token of after it.

Expiry is checked at every use (`api_key_authenticate`), and the hash is
compared in constant time as before: a kept row only saves the query. A
row is kept at most MAX_AGE seconds (10) even when nothing moved the
generation: changes made outside Django (raw SQL on the keys table,
`manage.py flush`), which no signal reports, apply within that.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import DEFERRED

logger = logging.getLogger(__name__)

GENERATION_CACHE_KEY = "keys:generation"
# Fields the usage flusher moves: never kept, never a reason to drop the cache.
USAGE_FIELDS: frozenset[str] = frozenset({"usage_count", "last_used_at"})
# A user's login moves only this; it says nothing about their keys.
LOGIN_FIELDS: frozenset[str] = frozenset({"last_login"})
MAX_ENTRIES = 10_000
# Seconds a kept row is trusted even when the generation has not moved: a
# change made outside Django (raw SQL, `manage.py flush`), or one whose
# process died between its commit and its notice, applies within this.
MAX_AGE = 10.0


@dataclass(frozen=True, slots=True)
class _Entry:
    generation: str
    kept_at: float  # time.monotonic()
    key_values: tuple[Any, ...]
    owner_values: tuple[Any, ...] | None


_entries: dict[str, _Entry] = {}


# --- the generation token ---------------------------------------------------------


class _FileGeneration:
    """The generation as the identity and length of a file beside the SQLite database.

    A change appends one byte (`O_APPEND`: atomic, so concurrent changes
    each count); readers `stat()` it, a few microseconds with no database
    and no thread. Within one file the length only grows, so a generation
    never comes back. A file deleted and made anew is a new inode with a
    new modification time. (The file grows by a byte per change to a key
    or user: a megabyte per million changes.)
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._warned = False

    def read(self) -> str | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            try:
                self.bump()  # first use: make it, keep nothing until it is there
            except OSError as exc:
                self._warn(exc)
            return None
        except OSError as exc:
            self._warn(exc)
            return None
        return f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"

    def bump(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except PermissionError:
            # Made by another user (a server, an operator's shell): a new file
            # in its place is a new generation too, and needs only the folder
            # to be writable, as SQLite does. Fails loudly otherwise.
            temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            temporary.write_bytes(b".")
            os.replace(temporary, self.path)
            return
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)

    def _warn(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("Keys generation file unusable, not caching keys: %s", exc)


class _CacheGeneration:
    """The token in Django's cache (Redis with `REDIS_URL`), shared by every process."""

    def read(self) -> str | None:
        from django.core.cache import cache

        try:
            token = cache.get(GENERATION_CACHE_KEY)
            if token is None:
                cache.add(GENERATION_CACHE_KEY, secrets.token_hex(16), timeout=None)
                token = cache.get(GENERATION_CACHE_KEY)
        except Exception as exc:  # the store is down: look keys up, keep nothing
            logger.warning("Keys generation unreadable, not caching keys: %s", exc)
            return None
        return str(token) if token is not None else None

    def bump(self) -> None:
        from django.core.cache import cache

        cache.set(GENERATION_CACHE_KEY, secrets.token_hex(16), timeout=None)


class _ProcessGeneration:
    """A token in this process: for a database no other process can open."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)

    def read(self) -> str | None:
        return self.token

    def bump(self) -> None:
        self.token = secrets.token_hex(16)


class _NoGeneration:
    """No store every process shares: keep nothing."""

    def read(self) -> str | None:
        return None

    def bump(self) -> None:
        pass


_Store = _FileGeneration | _CacheGeneration | _ProcessGeneration | _NoGeneration
_stores: dict[tuple[str, str, str], _Store] = {}
_stores_lock = threading.Lock()


def _store() -> _Store:
    """The store for the current settings (tests switch databases and caches)."""
    database = connections[DEFAULT_DB_ALIAS].settings_dict
    key = (
        database["ENGINE"],
        str(database.get("NAME") or ""),
        settings.CACHES["default"]["BACKEND"],
    )
    store = _stores.get(key)
    if store is None:
        with _stores_lock:
            store = _stores.get(key)
            if store is None:
                store = _stores[key] = _new_store(*key)
    return store


def _new_store(engine: str, name: str, cache_backend: str) -> _Store:
    if engine == "django.db.backends.sqlite3":
        if not name or name == ":memory:" or "mode=memory" in name:
            return _ProcessGeneration()
        path = Path(name.removeprefix("file:").split("?", 1)[0])
        return _FileGeneration(path.with_name(f"{path.name}-keygen"))
    if cache_backend.endswith(("LocMemCache", "DummyCache")):
        return _NoGeneration()
    return _CacheGeneration()


def generation() -> str | None:
    """The current keys generation; None when keys must not be kept."""
    return _store().read()


def generation_bump() -> None:
    """Something about a key changed: every process drops what it kept.

    Replaced now (this connection's later reads see the change) and again
    when the surrounding transaction commits (other processes could have
    read the old row meanwhile and kept it under the token of now).
    """
    _entries.clear()
    store = _store()
    store.bump()
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.in_atomic_block:
        transaction.on_commit(_bump_after_commit, robust=True)


def _bump_after_commit() -> None:
    _entries.clear()
    _store().bump()


def clear() -> None:
    """Forget what this process kept (tests)."""
    _entries.clear()


# --- kept rows --------------------------------------------------------------------


@functools.cache
def _concrete_fields(model: Any) -> tuple[Any, ...]:
    """The model's columns, in the order `Model.from_db` takes their values."""
    return tuple(field for field in model._meta.get_fields() if field.concrete)


@functools.cache
def _attnames(model: Any) -> tuple[str, ...]:
    return tuple(field.attname for field in _concrete_fields(model))


def _key_fields() -> tuple[Any, ...]:
    from keys.models import ApiKey

    return _concrete_fields(ApiKey)


def _from_db(model: Any, values: tuple[Any, ...]) -> Any:
    # Django's documented way to make an instance from a row (loaded, bound
    # to its database): not an unsaved object that would INSERT on save().
    return model.from_db(DEFAULT_DB_ALIAS, _attnames(model), values)


def lookup(prefix: str, generation: str) -> Any | None:
    """A fresh ApiKey (owner attached) for `prefix` as read under `generation`, or None."""
    entry = _entries.get(prefix)
    if entry is None or entry.generation != generation:
        return None
    if time.monotonic() - entry.kept_at > MAX_AGE:
        return None
    from keys.models import ApiKey

    api_key = _from_db(ApiKey, entry.key_values)
    owner = None
    if entry.owner_values is not None:
        owner = _from_db(get_user_model(), entry.owner_values)
    ApiKey.owner.field.set_cached_value(api_key, owner)
    return api_key


def remember(prefix: str, generation: str, api_key: Any) -> None:
    """Keep a key read from the database under the generation read BEFORE the query."""
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return  # maybe uncommitted: another transaction could roll it back
    key_values = tuple(
        DEFERRED if field.attname in USAGE_FIELDS else getattr(api_key, field.attname)
        for field in _key_fields()
    )
    owner_values = None
    if api_key.owner_id is not None:
        owner = api_key.owner
        owner_values = tuple(getattr(owner, f.attname) for f in _concrete_fields(type(owner)))
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[prefix] = _Entry(generation, time.monotonic(), key_values, owner_values)
