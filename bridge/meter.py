"""Progress of long work (replay, repair, copies) for the person running it: a bar with the
rate and the time left on a terminal, a plain line every few seconds otherwise (a log file,
a CI job), and a last line with the totals. Written to stderr, so stdout stays the result."""

from __future__ import annotations

import sys
import time
from typing import TextIO

PLAIN_EVERY = 5.0  # seconds between lines when the output is not a terminal
BAR_EVERY = 0.2  # seconds between redraws of the bar
WIDTH = 30


def duration(seconds: float) -> str:
    """`1h02m`, `3m07s`, `12s`."""
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    if hours:
        return f"{hours}h{m:02d}m"
    return f"{m}m{s:02d}s" if m else f"{s}s"


class Meter:
    """`with Meter("replay to LONDON", total, "events") as m: ... m.advance(n)`."""

    def __init__(
        self,
        what: str,
        total: int | None,
        unit: str = "events",
        stream: TextIO | None = None,
        tty: bool | None = None,
    ) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.done = 0
        self.started = time.monotonic()
        self._shown = 0.0

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate
        text = f"{self.what}: {self.done:,}"
        if self.total:
            share = min(self.done / self.total, 1.0)
            text += f"/{self.total:,} {self.unit} ({share:.0%})"
            if self.tty:
                filled = round(share * WIDTH)
                text = (
                    f"{self.what} [{'#' * filled}{'.' * (WIDTH - filled)}] "
                    + text.split(": ", 1)[1]
                )
        else:
            text += f" {self.unit}"
        text += f", {rate:,.0f} {self.unit}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", {duration((self.total - self.done) / rate)} left"
        return text

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._shown >= (BAR_EVERY if self.tty else PLAIN_EVERY):
            self._shown = now
            self._show(final=False)

    def _show(self, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """The last line: what was done, in how long."""
        if self.tty:
            self.stream.write("\r\x1b[K")
        elapsed = time.monotonic() - self.started
        self.stream.write(
            f"{self.what}: {self.done:,} {self.unit} in {duration(elapsed)} "
            f"({self.rate:,.0f} {self.unit}/s)\n"
        )
        self.stream.flush()
