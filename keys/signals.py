"""Every change to a key, or to a user (who may own keys), drops the keys every
process keeps (`keys.keycache`). Bulk updates of keys say so themselves
(`ApiKeyQuerySet.update`); deletes send these signals for every row."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save

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
    user_model = get_user_model()
    post_save.connect(_key_saved, sender=ApiKey, dispatch_uid="keys.keycache.key_saved")
    post_delete.connect(_deleted, sender=ApiKey, dispatch_uid="keys.keycache.key_deleted")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="keys.keycache.user_saved")
    post_delete.connect(_deleted, sender=user_model, dispatch_uid="keys.keycache.user_deleted")
