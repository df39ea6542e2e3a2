"""Job priorities: three levels, translated into what the configured broker understands.

- **Redis**: each queue is a list per priority step (``priority_steps`` 0, 3, 6, 9; kombu's
  defaults, written explicitly so every producer and consumer agree). **0 is the highest**, and a
  message without a priority lands in step 0, the top bucket: so every task gets an explicit
  priority from its route (there is no "unset"). A worker pops from the highest non-empty step
  of all its queues first (BRPOP over ``queue, queue\\x06\\x163, ...`` in step order).
- **RabbitMQ**: queues are declared with ``x-max-priority``; a higher number is more urgent and
  a message without a priority counts as 0, the lowest. Priorities order messages within one
  queue (a worker consuming several queues takes from each as it comes).
- **Filesystem** (the embedded default): no priorities; each queue is first in, first out.
"""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    HIGH = "high"
    MID = "mid"
    LOW = "low"


REDIS_PRIORITY_STEPS = [0, 3, 6, 9]
REDIS_PRIORITIES = {Level.HIGH: 0, Level.MID: 3, Level.LOW: 6}
AMQP_MAX_PRIORITY = 9
AMQP_PRIORITIES = {Level.HIGH: 9, Level.MID: 5, Level.LOW: 1}
# The default for anything that names no level (routes give every task one).
DEFAULT_LEVEL = Level.MID


def broker_kind(url: str | None) -> str:
    """``redis``, ``amqp``, ``filesystem`` or ``other``, from a broker URL."""
    scheme = str(url or "").split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "sentinel"):
        return "redis"
    if scheme in ("amqp", "amqps", "pyamqp", "librabbitmq"):
        return "amqp"
    if scheme == "filesystem":
        return "filesystem"
    return "other"


def priority_for(level: Level | str, broker_url: str | None) -> int:
    """The message priority that means ``level`` on this broker."""
    wanted = Level(level)
    if broker_kind(broker_url) == "amqp":
        return AMQP_PRIORITIES[wanted]
    # Redis, and brokers that ignore priorities (where any number is harmless).
    return REDIS_PRIORITIES[wanted]


def redis_step_label(step: int) -> str:
    """How a Redis priority step is labelled in metrics: the level it serves, else the step."""
    for level, value in REDIS_PRIORITIES.items():
        if value == step:
            return str(level)
    return f"step{step}"
