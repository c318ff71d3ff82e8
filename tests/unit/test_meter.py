"""The progress of a long copy (bridge/meter.py): a line redrawn in place on a terminal,
plain lines every few seconds elsewhere, with the count, rate and time left."""

from __future__ import annotations

import io

import pytest

from bridge.meter import PLAIN_EVERY, Meter

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_line_has_count_share_rate_and_time_left() -> None:
    clock = Clock()
    meter = Meter("orders", 10_000, io.StringIO(), tty=False, clock=clock)
    clock.now += 2.0
    meter.done = 2_000
    assert meter.line() == "orders: 2,000/10,000  20.0% 1,000 rows/s ETA 0:08"


def test_plain_output_writes_a_line_every_few_seconds_not_per_chunk() -> None:
    clock, out = Clock(), io.StringIO()
    meter = Meter("orders", 1_000, out, tty=False, clock=clock)
    for _ in range(5):  # five chunks within a second: one line
        clock.now += 0.1
        meter.advance(100)
    assert len(out.getvalue().splitlines()) == 1
    clock.now += PLAIN_EVERY
    meter.advance(100)
    assert len(out.getvalue().splitlines()) == 2
    assert "\r" not in out.getvalue()
    meter.finish()
    assert out.getvalue().splitlines()[-1].startswith("orders: 600 rows in ")


def test_a_terminal_gets_one_line_redrawn_in_place() -> None:
    clock, out = Clock(), io.StringIO()
    meter = Meter("orders", 300, out, tty=True, clock=clock)
    for _ in range(3):
        clock.now += 1.0
        meter.advance(100)
    meter.finish()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\r") == 4
    assert "300/300 100.0% 100 rows/s ETA 0:00" in text


def test_a_terminal_shows_a_bar_and_the_unit() -> None:
    clock, out = Clock(), io.StringIO()
    meter = Meter("replay to LONDON", 10, out, tty=True, clock=clock, unit="events")
    clock.now += 1.0
    meter.advance(5)
    assert "[##########..........] replay to LONDON: 5/10  50.0% 5 events/s ETA 0:01" in (
        out.getvalue()
    )
