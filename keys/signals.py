"""Every change to a key, or to a user (who may own keys), drops the keys every
process keeps (`keys.keycache`). Bulk updates of keys say so themselves
(`ApiKeyQuerySet.update`); deletes send these signals for every row."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from keys import keycache
from keys.models import ApiKey


def _key_saved(sender: Any, instance: ApiKey, update_fields: Any = None, **kwargs: Any) -> None:
    if update_fields is not None and set(update_fields) <= keycache.USAGE_FIELDS:
        return
    keycache.generation_bump()


def _user_saved(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if update_fields is not None and set(update_fields) <= keycache.LOGIN_FIELDS:
        return  # a login: nothing a key depends on
    keycache.generation_bump()


def _deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    keycache.generation_bump()


def connect() -> None:
    """After the write (and its commit), and before it: a generation that
    cannot be moved (an unwritable file, Redis down) fails the change itself."""
    user = get_user_model()
    uid = "keys.keycache"
    for when, signal in (("pre", pre_save), ("post", post_save)):
        signal.connect(_key_saved, sender=ApiKey, dispatch_uid=f"{uid}.key_{when}_save")
        signal.connect(_user_saved, sender=user, dispatch_uid=f"{uid}.user_{when}_save")
    for when, signal in (("pre", pre_delete), ("post", post_delete)):
        signal.connect(_deleted, sender=ApiKey, dispatch_uid=f"{uid}.key_{when}_delete")
        signal.connect(_deleted, sender=user, dispatch_uid=f"{uid}.user_{when}_delete")
