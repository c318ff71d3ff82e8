"""How far this site's consumer has taken its own queue: what lets the dispatcher tell a
message that was lost from one that is only waiting in a long queue.

Every message the dispatcher publishes goes to every site's queue, this site's own too, and
comes back to it as an echo that removes its outbox row. The broker confirms a message once
the queues hold it, and the dispatcher then stamps its row `published_at` (the database's
clock). Each queue takes the messages of the dispatcher's channel in the order it published
them, and confirms them in that order (every message goes to the same queues). So once the
consumer has taken, and committed, a message confirmed at time T, it has taken every
message confirmed before T: an outbox row stamped before T that is still there was lost
from the own queue, and must be published again. A row stamped after T is simply not
reached yet, however long that takes: republishing it would only lengthen every queue.

`upto()` is that T, minus a margin (rows stamped by one statement are stamped a few
microseconds apart in no given order; a consumer that crashed gets its unacknowledged
messages back out of order). It moves:
- with the echoes the consumer commits: the latest `published_at` among them;
- with the queue seen empty twice in a row, with nothing delivered in between: every
  message confirmed before the first look has been taken (the second look rules out a
  delivery that was on its way when the first said empty).
It starts unknown in each process: until the consumer shows progress, confirmed rows are
left alone.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

MARGIN = dt.timedelta(seconds=2)


class QueueProgress:
    """Shared by the site's consumer (which moves it) and its dispatcher (which reads it)."""

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock  # the database's clock, read on the consumer's connection
        self._lock = threading.Lock()
        self._passed: dt.datetime | None = None
        self._deliveries = 0
        self._empty_since: dt.datetime | None = None
        self._deliveries_then = 0

    def passed(self, confirmed_at: dt.datetime | None) -> None:
        """The consumer committed the echo of a message confirmed at `confirmed_at`."""
        with self._lock:
            self._advance(confirmed_at)

    def _advance(self, to: dt.datetime | None) -> None:
        if to is not None and (self._passed is None or to > self._passed):
            self._passed = to

    def delivered(self, n: int = 1) -> None:
        with self._lock:
            self._deliveries += n

    def now(self) -> dt.datetime:
        return self._clock()

    def queue_empty(self, at: dt.datetime) -> None:
        """The queue held no message ready for delivery when looked at, just after `at`
        (now(), read before looking), and the consumer had none unfinished."""
        with self._lock:
            if self._empty_since is not None and self._deliveries == self._deliveries_then:
                self._advance(self._empty_since)
            self._empty_since, self._deliveries_then = at, self._deliveries

    def queue_busy(self) -> None:
        with self._lock:
            self._empty_since = None

    def upto(self) -> dt.datetime | None:
        """Rows stamped published before this and still in the outbox were lost from the
        own queue; None while the consumer has shown no progress yet."""
        with self._lock:
            return None if self._passed is None else self._passed - MARGIN
