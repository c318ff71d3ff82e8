"""Named crash points, for fault tests only: the process kills itself with SIGKILL there.

Inactive (each `hit` is one dictionary lookup) unless `BRIDGE_FAILPOINTS` is set, e.g.

    BRIDGE_FAILPOINTS="consume.applied=0.05,dispatch.published=0.01"

which makes every pass through `consume.applied` a 5% chance of `kill -9` of this very
process (and so on). `BRIDGE_FAILPOINTS_SEED` makes the draws repeatable. The points sit in
the windows where a crash is most dangerous: between publish and confirm, between confirm
and marking the row published, between the apply commit and the acknowledgement.

| point                  | where                                                        |
|------------------------|--------------------------------------------------------------|
| dispatch.published     | an event handed to the broker, its confirm not yet received  |
| dispatch.confirmed     | confirms received, the rows not yet marked published         |
| dispatch.marked        | rows marked published (committed)                            |
| apply.statements       | a batch's statements run, its transaction not yet committed  |
| consume.applied        | a batch committed (applied or archived), not yet acknowledged|
| consume.dead_lettered  | bad messages sent to the dead-letter queue, not yet acked    |
| consume.acked          | a batch acknowledged                                         |
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

POINTS = (
    "dispatch.published",
    "dispatch.confirmed",
    "dispatch.marked",
    "apply.statements",
    "consume.applied",
    "consume.dead_lettered",
    "consume.acked",
)


def parse(spec: str) -> dict[str, float]:
    """`name=probability,...` -> {name: probability}; unknown names are refused."""
    out: dict[str, float] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        name, _, p = item.partition("=")
        name = name.strip()
        if name not in POINTS:
            raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(POINTS)}")
        out[name] = float(p) if p.strip() else 1.0
    return out


_ACTIVE = parse(os.environ.get("BRIDGE_FAILPOINTS", ""))
_RANDOM = random.Random(os.environ.get("BRIDGE_FAILPOINTS_SEED"))


_HOOKS: dict[str, Callable[[], None]] = {}


@contextmanager
def hooked(name: str, hook: Callable[[], None]) -> Iterator[None]:
    """For tests in this process: call `hook` at every pass through the point `name` (to
    hold a transaction open there while another connection acts), instead of dying."""
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(POINTS)}")
    _HOOKS[name] = hook
    try:
        yield
    finally:
        del _HOOKS[name]


def hit(name: str) -> None:
    """Maybe die here (only when this point is active)."""
    hook = _HOOKS.get(name)
    if hook is not None:
        hook()
    p = _ACTIVE.get(name)
    if p is not None and _RANDOM.random() < p:
        os.write(2, f"failpoint {name}: kill -9 of pid {os.getpid()}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
