"""`bridge run`'s health (GET /healthz, bridge/serve.py): what is wrong with the process,
nothing when it is healthy. Cheap enough for a probe every second: thread states, the
broker links the parts report (bridge/stats.py) and the database read the metrics keep
(bridge/probe.py, one small query every few seconds at most)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from bridge.probe import Probe
from bridge.stats import Stats

LINK_GRACE = 30.0  # seconds a part may be without its broker connection (reconnecting)
ANSWER_STALE = 30.0  # seconds after which the database's last answer is too old


def reasons(
    stopping: bool,
    threads: Sequence[threading.Thread],
    stats: Stats,
    linked: Sequence[str],
    probe: Probe,
    now: float | None = None,
) -> list[str]:
    """Why the bridge is not healthy; empty if it is. `linked`: the parts that must hold
    a broker connection (the dispatcher, the consumers)."""
    now = time.monotonic() if now is None else now
    found = []
    if stopping:
        found.append("the bridge is stopping")
    found += [f"{t.name} thread is not running" for t in threads if not t.is_alive()]
    links = stats.links()
    for part in linked:
        link = links.get(part)
        if link is None:
            found.append(f"{part} not connected to the broker yet")
        elif not link[0] and now - link[1] >= LINK_GRACE:
            found.append(f"{part} not connected to the broker for {now - link[1]:.0f} s")
    probe.status()  # read again if what is kept is old
    if probe.error is not None:
        found.append(f"database did not answer: {probe.error}")
    elif probe.answered_at is None:
        found.append("database not read yet")
    elif now - probe.answered_at >= ANSWER_STALE:
        found.append(f"database last answered {now - probe.answered_at:.0f} s ago")
    return found
