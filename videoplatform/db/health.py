"""Health checks for the replicas: reachable, streaming, and within the lag bound."""

from __future__ import annotations

import dataclasses

from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

from .replicas import ReplicaState, monitor


@dataclasses.dataclass
class ReplicaCheck(HealthCheck):
    """Measures a replica now (which also refreshes this process's routing state)."""

    alias: str
    state: ReplicaState | None = dataclasses.field(default=None, repr=False, compare=False)

    def run(self) -> None:
        self.state = monitor.check(self.alias)
        if not self.state.in_rotation:
            raise ServiceUnavailable(self.state.describe())

    def __repr__(self) -> str:
        if self.state is None:
            return f"Replica({self.alias})"
        return f"Replica({self.alias}: {self.state.describe()})"
