"""An account deleted without the services (a queryset or an instance deleted in a shell or a
management command) still has its tokens refused and its profile dropped from the caches."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import pre_delete

from . import selectors, token_cache
from .models import User


def _user_deleting(sender: Any, instance: User, **kwargs: Any) -> None:
    # Listed before the cascade deletes the rows; marked revoked once the deletion commits.
    digests = selectors.user_token_digests(user_ids=[instance.pk], include_expired=True)
    transaction.on_commit(lambda: token_cache.mark_revoked(digests), robust=True)
    selectors.user_profile_cache_refresh(user_ids=[instance.pk])


def connect() -> None:
    pre_delete.connect(_user_deleting, sender=User, dispatch_uid="accounts.user_deleting")
