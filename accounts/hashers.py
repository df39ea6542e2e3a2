"""Argon2id with a cost chosen for the login latency target (docs/accounts.md)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher


class TunedArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id, same algorithm name as Django's, so hashes at another cost upgrade on login.

    The cost is read from the settings on each use (not frozen at import), so it can be tuned
    per deployment through the environment.
    """

    @property
    def time_cost(self) -> int:  # type: ignore[override]
        return int(settings.ARGON2_TIME_COST)

    @property
    def memory_cost(self) -> int:  # type: ignore[override]
        return int(settings.ARGON2_MEMORY_COST_KIB)

    @property
    def parallelism(self) -> int:  # type: ignore[override]
        return int(settings.ARGON2_PARALLELISM)
