"""Argon2id with a cost chosen for the login latency target (docs/accounts.md)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher


class TunedArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id, same algorithm name as Django's, so hashes at another cost upgrade on login."""

    @property  # type: ignore[override]
    def time_cost(self) -> int:
        return int(settings.ARGON2_TIME_COST)

    @property  # type: ignore[override]
    def memory_cost(self) -> int:
        return int(settings.ARGON2_MEMORY_COST_KIB)

    @property  # type: ignore[override]
    def parallelism(self) -> int:
        return int(settings.ARGON2_PARALLELISM)
