"""How far a long piece of work got, for a person watching (`bridge bootstrap`, `replay`,
`repair`): on a terminal one line redrawn in place with a bar, the count, the rate and
the time left; elsewhere (a log, a pipe) a plain line every few seconds, so that a log
shows progress without a line per chunk. Written to stderr by default: stdout stays the
command's result. (bridge/progress.py is something else: how far the own queue was
taken.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from bridge import logfmt

REDRAW = 0.2  # seconds between redraws on a terminal
PLAIN_EVERY = 5.0  # seconds between plain lines
BAR = 20  # characters of the bar on a terminal


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Meter:
    """Counts `total` units (`unit`: rows, events) of one task (`label`) as they are done."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "rows",
    ) -> None:
        self.label = label
        self.total = max(total, 0)
        self.unit = unit
        self.done = 0
        self.stream = stream if stream is not None else logfmt.progress_stream()
        self.tty = self.stream.isatty() if tty is None else tty
        self._clock = clock
        self._start = clock()
        self._shown = self._start - PLAIN_EVERY  # first plain line at once

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def line(self) -> str:
        """The state as one line: label, count, share, rate, time left."""
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = self.done / elapsed
        share = f"{100 * self.done / self.total:5.1f}%" if self.total else "  --  "
        left = self.total - self.done
        eta = _clock(left / rate) if rate > 0 and left > 0 else ("0:00" if left <= 0 else "?")
        return (
            f"{self.label}: {self.done:,}/{self.total:,} {share} {rate:,.0f} {self.unit}/s "
            f"ETA {eta}"
        )

    def bar(self) -> str:
        filled = round(BAR * min(self.done / self.total, 1.0)) if self.total else 0
        return "[" + "#" * filled + "." * (BAR - filled) + "]"

    def advance(self, n: int) -> None:
        self.done += n
        now = self._clock()
        if now - self._shown < (REDRAW if self.tty else PLAIN_EVERY):
            return
        self._shown = now
        self._show()

    def _show(self, end: str = "") -> None:
        if self.tty:
            self.stream.write(f"\r\x1b[K{self.bar()} {self.line()}{end}")
        else:
            self.stream.write(f"{self.line()}\n")
        self.stream.flush()

    def finish(self) -> None:
        """The last state, on a line of its own."""
        elapsed = self._clock() - self._start
        self._show(end="\n")
        if not self.tty:
            self.stream.write(f"{self.label}: {self.done:,} {self.unit} in {elapsed:.1f}s\n")
            self.stream.flush()
