"""The drain progress line of the consumer (bridge/consumer.py `_Drain`): it counts events,
not messages, since a message carries up to 100 events (a 1,000,000-event backlog is only
12,000 messages: counted in messages, it never reached the threshold and said nothing)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.consumer import BACKLOG, DRAIN_REPORT_EVERY, _Drain

pytestmark = pytest.mark.unit


class QueueOf:
    """A channel whose queue holds `n` messages (what a passive queue_declare says)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def queue_declare(self, queue: str, passive: bool = False) -> Any:
        assert passive, "the drain line must not declare the queue"
        return SimpleNamespace(method=SimpleNamespace(message_count=self.n))


def taken_a_while_ago(drain: _Drain) -> None:
    drain.since -= DRAIN_REPORT_EVERY + 1


def test_a_backlog_of_batched_messages_is_reported_in_events(caplog):
    caplog.set_level(logging.INFO, logger="bridge.consumer")
    drain = _Drain("LONDON", "SITE_LONDON")
    taken_a_while_ago(drain)
    # 50 messages of 100 events taken; 5,000 messages (500,000 events) still waiting
    drain.taken(50, 5000, QueueOf(5000))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "draining: about 500000 events left (5000 messages)" in lines[0]
    assert drain.draining


def test_few_events_left_is_caught_up_and_a_small_queue_says_nothing(caplog):
    caplog.set_level(logging.INFO, logger="bridge.consumer")
    drain = _Drain("LONDON", "SITE_LONDON")
    taken_a_while_ago(drain)
    drain.taken(50, 5000, QueueOf(5000))
    taken_a_while_ago(drain)
    left = BACKLOG // 100 - 1  # messages of 100 events: just under the threshold
    drain.taken(50, 5000, QueueOf(left))
    assert "caught up" in caplog.records[-1].getMessage()
    assert not drain.draining
    caplog.clear()
    # single-event messages: as many messages as the threshold's events is not a backlog
    quiet = _Drain("MADRID", "SITE_MADRID")
    taken_a_while_ago(quiet)
    quiet.taken(10, 10, QueueOf(BACKLOG - 1))
    assert caplog.records == []


def test_no_line_before_the_interval(caplog):
    caplog.set_level(logging.INFO, logger="bridge.consumer")
    drain = _Drain("LONDON", "SITE_LONDON")
    drain.taken(50, 5000, QueueOf(5000))  # just started: nothing yet
    assert caplog.records == []
