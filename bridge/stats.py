"""Counters of one bridge process, shared by its threads and printed by `bridge run`.

Also what `bridge run`'s metrics (bridge/metrics.py) need from the hot paths beyond the
counters, each O(1) and nothing at all while no observer watches: timings (how old an
applied event was, how long an own message took to come back), and whether the dispatcher
and the consumers hold a broker connection (bridge/liveness.py)."""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

APPLY_LAG = "apply_lag"  # seconds from an event's timestamp to its apply here, per origin
ECHO_ROUND_TRIP = "echo_round_trip"  # seconds from publishing a message to its echo here
MAX_SENT = 100_000  # messages whose publish time is kept until their echo comes back

Observer = Callable[[str, str, float], None]  # timing name, label value, seconds


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._observers: list[Observer] = []
        self._sent: OrderedDict[str, float] = OrderedDict()  # message id -> monotonic
        self._links: dict[str, tuple[bool, float]] = {}  # part -> connected, since

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in sorted(self.snapshot().items())) or "idle"

    # -- timings: only while watched -----------------------------------------------------
    def watch(self, observer: Observer) -> None:
        self._observers.append(observer)

    @property
    def timed(self) -> bool:
        """Someone takes the timings: callers skip working them out otherwise."""
        return bool(self._observers)

    def observe(self, name: str, label: str, seconds: float) -> None:
        for observer in self._observers:
            observer(name, label, seconds)

    def sent(self, message_id: str) -> None:
        """The dispatcher published this message (again: the latest publish counts)."""
        if not self._observers:
            return
        with self._lock:
            self._sent[message_id] = time.monotonic()
            self._sent.move_to_end(message_id)
            if len(self._sent) > MAX_SENT:  # echoes that never come (another consumer)
                self._sent.popitem(last=False)

    def echoed(self, message_id: str) -> None:
        """This site's own message came back through its queue."""
        if not self._observers:
            return
        with self._lock:
            at = self._sent.pop(message_id, None)
        if at is not None:
            self.observe(ECHO_ROUND_TRIP, "", time.monotonic() - at)

    # -- broker links --------------------------------------------------------------------
    def link(self, part: str, up: bool) -> None:
        """`part` (dispatcher, consumer, archiver) got (up) or lost its broker connection."""
        with self._lock:
            self._links[part] = (up, time.monotonic())

    def links(self) -> dict[str, tuple[bool, float]]:
        with self._lock:
            return dict(self._links)
