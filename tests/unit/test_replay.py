"""Replay without services: the times it accepts, whom a consumer trusts to relay events of
other origins, what a repair event is."""

from __future__ import annotations

import datetime as dt

import pytest

from bridge import event as events
from bridge import wire
from bridge.broker import REPLAY_HEADER
from bridge.consumer import validate
from bridge.errors import ConfigError, EventError
from bridge.replay import parse_time

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def event(origin: str = "MADRID", repair: bool = False) -> events.Event:
    data = {"table": "orders", "op": "insert", "key": {"id": 1}, "row": {"id": 1}}
    if repair:
        data["repair"] = True
    return events.Event("6f1c1d5e-8e0a-4c1e-9d55-7b8a3c0e9f10", NOW, origin, "orders.insert", data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", NOW - dt.timedelta(minutes=90)),
        ("6h", NOW - dt.timedelta(hours=6)),
        ("3d", NOW - dt.timedelta(days=3)),
        ("45s", NOW - dt.timedelta(seconds=45)),
        ("2026-11-27", dt.datetime(2026, 11, 27, tzinfo=dt.UTC)),
        ("2026-11-27T10:00:00Z", dt.datetime(2026, 11, 27, 10, tzinfo=dt.UTC)),
        ("2026-11-27T12:00:00+02:00", dt.datetime(2026, 11, 27, 10, tzinfo=dt.UTC)),
    ],
)
def test_times_a_replay_accepts(text: str, expected: dt.datetime) -> None:
    assert parse_time(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "3 weeks", "-2h", "2026-13-01"])
def test_other_times_are_refused_saying_what_is_accepted(text: str) -> None:
    with pytest.raises(ConfigError, match="ISO-8601 .* or a time ago"):
        parse_time(text, now=NOW)


def test_a_replayed_message_from_the_archive_user_relays_any_origin() -> None:
    e = event("MADRID")
    got = validate(e.encode(), e.id, "paris", {REPLAY_HEADER: "replay"}, "PARIS")
    assert [x.origin for x in got] == ["MADRID"] and got[0].relayed


def test_a_replayed_message_from_another_user_is_refused() -> None:
    e = event("MADRID")
    with pytest.raises(EventError, match="only the archive site's .'paris'. may replay"):
        validate(e.encode(), e.id, "london", {REPLAY_HEADER: "replay"}, "PARIS")
    # without the header the origin must be the publisher's, as always
    with pytest.raises(EventError, match="does not match the publishing broker user"):
        validate(e.encode(), e.id, "paris", {}, "PARIS")


def test_a_batch_is_relayed_whole() -> None:
    a, b = event("LONDON"), event("LONDON")
    b = events.Event("0b6f7a30-1c2d-4e5f-8a9b-0c1d2e3f4a5b", NOW, "LONDON", a.type, dict(a.data))
    got = validate(wire.encode_events([a, b]), a.id, "paris", {REPLAY_HEADER: "x"}, "PARIS")
    assert [x.relayed for x in got] == [True, True]


def test_repair_counts_only_on_a_relayed_event() -> None:
    """A site cannot make its own event a repair (applied at a version already known):
    the flag counts only on what the archive relayed."""
    e = event("MADRID", repair=True)
    assert not validate(e.encode(), e.id, "madrid", {}, "PARIS")[0].repair
    assert validate(e.encode(), e.id, "paris", {REPLAY_HEADER: "repair"}, "PARIS")[0].repair
