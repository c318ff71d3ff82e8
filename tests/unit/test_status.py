"""What `bridge status` concludes from a site's counters (bridge/status.py)."""

from __future__ import annotations

import pytest

from bridge.status import SiteStatus

pytestmark = pytest.mark.unit


def state(**dispatcher: int) -> SiteStatus:
    return SiteStatus(0, 0, None, None, 0, 0, 0, 0, dispatcher)


def test_a_few_republished_messages_are_no_warning() -> None:
    s = state(sent=1010, confirmed=1000, republished=10)
    assert s.republish_ratio == 0.01
    assert s.warnings() == []


def test_more_than_five_percent_republished_is_a_warning() -> None:
    (warning,) = state(sent=1100, confirmed=1000, republished=60).warnings()
    assert "6.0% of the messages confirmed were published again" in warning


def test_too_few_messages_to_judge() -> None:
    assert state(sent=10, confirmed=10, republished=5).warnings() == []
    assert state().republish_ratio is None
    assert ("republish_ratio", "-") in state().lines()


def test_events_waiting_for_a_parent_are_a_warning() -> None:
    s = SiteStatus(0, 0, None, None, 0, 0, 2, 0, {})
    (warning,) = s.warnings()
    assert warning.startswith("2 event(s) wait for a row they reference")
