"""How far the own queue was taken (bridge/progress.py): the evidence the dispatcher
republishes on, and nothing else."""

from __future__ import annotations

import datetime as dt

import pytest

from bridge.progress import MARGIN, QueueProgress

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def progress() -> QueueProgress:
    return QueueProgress(lambda: T0)


def test_nothing_is_known_before_the_consumer_shows_progress() -> None:
    assert progress().upto() is None


def test_echoes_move_it_to_the_latest_confirm_less_the_margin() -> None:
    p = progress()
    p.passed(at(10))
    p.passed(at(5))  # an earlier echo, redelivered late: never back
    p.passed(None)  # a batch without echoes
    assert p.upto() == at(10) - MARGIN


def test_an_empty_queue_counts_once_seen_empty_twice_with_nothing_delivered_between() -> None:
    p = progress()
    p.queue_empty(at(1))
    assert p.upto() is None  # a delivery may have been on its way when it looked
    p.queue_empty(at(3))
    assert p.upto() == at(1) - MARGIN


def test_a_delivery_between_two_looks_voids_the_first() -> None:
    p = progress()
    p.queue_empty(at(1))
    p.delivered()
    p.queue_empty(at(3))
    assert p.upto() is None
    p.queue_empty(at(5))
    assert p.upto() == at(3) - MARGIN


def test_a_busy_queue_voids_the_look_before() -> None:
    p = progress()
    p.queue_empty(at(1))
    p.queue_busy()
    p.queue_empty(at(3))
    assert p.upto() is None


def test_an_empty_queue_never_moves_it_back() -> None:
    p = progress()
    p.passed(at(10))
    p.queue_empty(at(1))
    p.queue_empty(at(2))
    assert p.upto() == at(10) - MARGIN
