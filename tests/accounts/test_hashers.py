"""Password hashing: tuned Argon2id for new passwords, older hashes upgraded on login."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher, make_password

from tests.accounts.conftest import post_login
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TUNED_PREFIX = "argon2$argon2id$v=19$m=19456,t=2,p=1$"


def test_new_passwords_use_the_tuned_argon2id() -> None:
    assert make_password("any passphrase at all").startswith(TUNED_PREFIX)


@pytest.mark.parametrize(
    "old_hash",
    [
        lambda: make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256"),
        lambda: make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha1"),
        lambda: Argon2PasswordHasher().encode(DEFAULT_PASSWORD, Argon2PasswordHasher().salt()),
    ],
    ids=["pbkdf2_sha256", "pbkdf2_sha1", "django-default-argon2"],
)
def test_older_hashes_are_upgraded_on_login(old_hash: Any) -> None:
    user = UserFactory()
    user.password = old_hash()
    user.save(update_fields=["password"])
    assert not user.password.startswith(TUNED_PREFIX)

    assert post_login(user.username, DEFAULT_PASSWORD).status_code == 200

    user.refresh_from_db()
    assert user.password.startswith(TUNED_PREFIX)
    assert post_login(user.username, DEFAULT_PASSWORD).status_code == 200


def test_a_failed_login_does_not_touch_an_old_hash() -> None:
    user = UserFactory()
    user.password = make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])

    assert post_login(user.username, "wrong").status_code == 401

    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_sha256$")


def test_cost_follows_the_settings(settings: Any) -> None:
    settings.ARGON2_TIME_COST = 3
    settings.ARGON2_MEMORY_COST_KIB = 8192

    assert make_password("any passphrase at all").startswith("argon2$argon2id$v=19$m=8192,t=3,p=1$")
