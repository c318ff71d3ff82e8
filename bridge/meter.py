"""How far a long copy got, for a person watching (`bridge bootstrap`): on a terminal one
line redrawn in place with the count, the rate and the time left; elsewhere (a log, a
pipe) a plain line every few seconds, so that a log shows progress without a line per
chunk. (bridge/progress.py is something else: how far the own queue was taken.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

REDRAW = 0.2  # seconds between redraws on a terminal
PLAIN_EVERY = 5.0  # seconds between plain lines


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Meter:
    """Counts `total` units of one task (`label`) as they are done."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._clock = clock
        self._start = clock()
        self._shown = self._start - PLAIN_EVERY  # first plain line at once

    def line(self) -> str:
        """The state as one line: label, count, share, rate, time left."""
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = self.done / elapsed
        share = f"{100 * self.done / self.total:5.1f}%" if self.total else "  --  "
        left = self.total - self.done
        eta = _clock(left / rate) if rate > 0 and left > 0 else ("0:00" if left <= 0 else "?")
        return f"{self.label}: {self.done:,}/{self.total:,} {share} {rate:,.0f} rows/s ETA {eta}"

    def advance(self, n: int) -> None:
        self.done += n
        now = self._clock()
        if now - self._shown < (REDRAW if self.tty else PLAIN_EVERY):
            return
        self._shown = now
        self._show()

    def _show(self, end: str = "") -> None:
        if self.tty:
            self.stream.write(f"\r\x1b[K{self.line()}{end}")
        else:
            self.stream.write(f"{self.line()}\n")
        self.stream.flush()

    def finish(self) -> None:
        """The last state, on a line of its own."""
        elapsed = self._clock() - self._start
        self._show(end="\n")
        if not self.tty:
            self.stream.write(f"{self.label}: {self.done:,} rows in {elapsed:.1f}s\n")
            self.stream.flush()
