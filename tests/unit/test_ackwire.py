"""The acknowledgement message (bridge/ackwire.py) and what the sender makes of outcomes
(bridge/acks.py): encode/decode round trip, and every malformed or untrusted message refused
with its reason."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from bridge import ackwire
from bridge.acks import ack_of, route
from bridge.ackwire import Ack, AckBatch
from bridge.archive import ARCHIVE_DUPLICATE, ARCHIVED
from bridge.decision import APPLIED, CONFLICT, ECHO, REJECTED, WAITING, Outcome
from bridge.errors import AckError
from bridge.event import Event

pytestmark = pytest.mark.unit

ID1 = "0b6f1b7e-2c1a-4d3e-9f00-0123456789ab"
ID2 = "4c1e0000-0000-4000-8000-000000000002"
BATCH = AckBatch(
    "PARIS",
    "LONDON",
    (Ack(ID1, "applied"), Ack(ID2, "failed", "cannot apply: CheckViolation: amount > 0")),
)


def body(**over: Any) -> bytes:
    raw: dict[str, Any] = json.loads(ackwire.encode(BATCH))
    raw.update(over)
    return json.dumps(raw).encode()


def test_round_trip() -> None:
    assert ackwire.decode(ackwire.encode(BATCH), "london") == BATCH


def test_the_body_is_what_the_docs_show() -> None:
    assert json.loads(ackwire.encode(BATCH)) == {
        "version": 1,
        "origin": "PARIS",
        "site": "LONDON",
        "acks": [
            {"id": ID1, "status": "applied"},
            {"id": ID2, "status": "failed", "reason": "cannot apply: CheckViolation: amount > 0"},
        ],
    }


def test_an_archive_s_acks_are_about_its_archive() -> None:
    stored = AckBatch("LONDON", "PARIS", (Ack(ID1, "applied"),), archive=True)
    body = ackwire.encode(stored)
    assert json.loads(body)["archive"] is True
    decoded = ackwire.decode(body, "paris")
    assert decoded == stored and decoded.destination == "PARIS_HISTO"
    assert BATCH.destination == "LONDON"
    with pytest.raises(AckError, match="'archive' 'yes' is not true or false"):
        ackwire.decode(body.replace(b"true", b'"yes"'), "paris")


def test_a_long_reason_is_truncated() -> None:
    long = AckBatch("PARIS", "LONDON", (Ack(ID1, "failed", "x" * 5000),))
    (ack,) = ackwire.decode(ackwire.encode(long), "london").acks
    assert len(ack.reason) == ackwire.MAX_REASON and ack.reason.endswith("…")


def test_properties_name_the_sender_s_broker_user() -> None:
    props = ackwire.properties("LONDON")
    assert props.user_id == "london" and props.type == ackwire.TYPE
    assert props.content_type == "application/json" and props.delivery_mode == 2


@pytest.mark.parametrize(
    ("raw", "user", "message"),
    [
        (b"not json", "london", "not JSON"),
        (b"[1, 2]", "london", "not a JSON object"),
        (body(version=2), "london", "version 2"),
        (body(origin="paris!"), "london", "'origin'"),
        (body(site=None), "london", "'site'"),
        (ackwire.encode(BATCH), None, "no user_id"),
        (ackwire.encode(BATCH), "madrid", "does not match the publishing broker user 'madrid'"),
        (body(acks=[]), "london", "'acks' must be a list"),
        (body(acks=[{"id": "42", "status": "applied"}]), "london", "is not a UUID"),
        (body(acks=[{"id": ID1, "status": "great"}]), "london", "status 'great'"),
        (body(acks=[{"id": ID1, "status": "failed", "reason": 3}]), "london", "reason"),
        (body(acks=[{"id": ID1, "status": "applied", "x": 1}]), "london", "id, status"),
        (body(acks=["applied"]), "london", "id, status"),
    ],
)
def test_malformed_or_untrusted_is_refused(raw: bytes, user: str | None, message: str) -> None:
    with pytest.raises(AckError, match=message.replace("(", r"\(")):
        ackwire.decode(raw, user)


def event(origin: str = "PARIS") -> Event:
    return Event(
        ID1,
        dt.datetime(2026, 11, 24, tzinfo=dt.UTC),
        origin,
        "orders.insert",
        {"table": "orders", "op": "insert", "key": {"id": 1}, "row": {"id": 1}},
    )


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome(APPLIED), Ack(ID1, "applied")),
        (Outcome(WAITING, "waiting: fk"), Ack(ID1, "waiting", "waiting: fk")),
        (Outcome(CONFLICT, "older"), Ack(ID1, "conflict", "older")),
        (
            Outcome(CONFLICT, "cannot apply: x", unwritable=True),
            Ack(ID1, "failed", "cannot apply: x"),
        ),
        (Outcome(REJECTED, "unknown table"), Ack(ID1, "failed", "dead-lettered: unknown table")),
        (Outcome(ECHO), None),
        (Outcome(ARCHIVED), Ack(ID1, "applied")),
        (Outcome(ARCHIVE_DUPLICATE), Ack(ID1, "duplicate")),
    ],
)
def test_what_an_outcome_is_acked_as(outcome: Outcome, expected: Ack | None) -> None:
    assert ack_of(event(), outcome) == expected


def test_routes() -> None:
    assert route("direct", "PARIS", "LONDON") == ("", "SITE_PARIS.acks")
    assert route("topic", "PARIS", "LONDON") == ("bridge.acks", "PARIS.LONDON")
