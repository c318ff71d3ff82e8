"""Exponential backoff with jitter, interruptible by a stop event."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable


class Backoff:
    def __init__(self, first: float = 0.5, ceiling: float = 15.0) -> None:
        self.first = first
        self.ceiling = ceiling
        self.delay = first

    def reset(self) -> None:
        self.delay = self.first

    def next_delay(self) -> float:
        delay = self.delay * random.uniform(0.8, 1.2)
        self.delay = min(self.delay * 2, self.ceiling)
        return delay

    def wait(self, stop: threading.Event) -> bool:
        """Sleep the next delay; True if stop was set meanwhile."""
        return stop.wait(self.next_delay())


def run_sessions(
    session: Callable[[], None],
    stop: threading.Event,
    errors: tuple[type[BaseException], ...],
    on_error: Callable[[BaseException], None],
    fatal: tuple[type[BaseException], ...] = (),
) -> None:
    """Run `session` again and again until stop is set: after it fails with one of
    `errors` (reported to `on_error`), wait with backoff; after it returns, start again.
    An error of `fatal` (a configuration error, even if it is one of `errors` too) is
    raised at once: retrying cannot fix it."""
    backoff = Backoff()
    while not stop.is_set():
        try:
            session()
            backoff.reset()
        except fatal:
            raise
        except errors as exc:
            on_error(exc)
        if stop.is_set():
            break
        backoff.wait(stop)
