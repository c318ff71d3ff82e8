"""The wire format (bridge/wire.py): one event (version 1) or a batch (version 2)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from bridge import dispatcher, event, wire
from bridge.consumer import validate
from bridge.errors import EventError
from tests.unit.test_codec import make_event

pytestmark = pytest.mark.unit

TS = dt.datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=dt.UTC)


def rows(n: int, tx: str | None = "901", origin: str = "PARIS") -> list[tuple]:
    """Outbox rows as outbox_fetch reads them: seq, id, created_at, origin, type, payload, tx."""
    out = []
    for i in range(n):
        data = {"table": "orders", "op": "insert", "key": {"id": i}, "row": {"id": i, "x": "é"}}
        out.append((100 + i, str(uuid.uuid4()), TS, origin, "orders.insert", json.dumps(data), tx))
    return out


def test_one_event_travels_as_version_1_the_seeds_event():
    (row,) = rows(1)
    body, props = dispatcher.batch_message([row], "paris")
    raw = json.loads(body)
    assert "version" not in raw and set(raw) == {"id", "timestamp", "origin", "type", "data"}
    assert props.type == "orders.insert" and props.message_id == row[1]
    assert wire.decode(body) == [event.decode(body)]


def test_a_batch_carries_each_event_with_its_own_five_fields_in_order():
    batch = rows(3)
    body, props = dispatcher.batch_message(batch, "paris")
    raw = json.loads(body)
    assert raw["version"] == 2 and raw["origin"] == "PARIS" and len(raw["events"]) == 3
    decoded = wire.decode(body)
    assert [e.id for e in decoded] == [r[1] for r in batch]
    assert decoded == [wire.decode(dispatcher.message(r, "paris")[0])[0] for r in batch]
    assert decoded[0].row == {"id": 0, "x": "é"}
    assert props.message_id == batch[0][1] and props.type == wire.BATCH_TYPE
    assert props.headers == {"x-bridge-origin": "PARIS", "x-bridge-events": 3}
    assert validate(body, props.message_id, "paris") == decoded
    # re-encoded from the events: the same body
    assert wire.decode(wire.encode_events(decoded)) == decoded


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda b: b.update(version=3), "newer than this bridge reads (1 to 2): upgrade"),
        (lambda b: b.update(version="2"), "not a message format version"),
        (lambda b: b.update(version=1), "version 1 messages carry no version field"),
        (lambda b: b.update(events=[]), "non-empty list of events"),
        (lambda b: b.pop("origin"), "needs its origin"),
        (lambda b: b["events"][1].update(origin="LONDON"), "event 1 of the batch has origin"),
        (lambda b: b["events"][1].pop("data"), "event 1 of the batch: missing field(s): data"),
        (lambda b: b["events"][1].update(id=b["events"][0]["id"]), "an event id twice"),
    ],
)
def test_a_bad_batch_is_refused_whole_with_its_reason(change, reason):
    raw = {"version": 2, "origin": "PARIS", "events": [make_event(), make_event()]}
    change(raw)
    with pytest.raises(EventError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        wire.decode(json.dumps(raw).encode())


def test_a_batch_is_checked_against_its_publisher_and_message_id():
    body, props = dispatcher.batch_message(rows(2), "paris")
    with pytest.raises(EventError, match="does not match the publishing broker user"):
        validate(body, props.message_id, "london")
    with pytest.raises(EventError, match="differs from event id"):
        validate(body, str(uuid.uuid4()), "paris")


def _group(items, max_events=100, max_bytes=1 << 20):
    return [
        [n for n, _ in g]
        for g in wire.group(
            list(enumerate(items)), lambda it: it[1][0], lambda it: it[1][1], max_events, max_bytes
        )
    ]


def test_group_takes_consecutive_rows_of_one_transaction():
    # (tx, size): a transaction's rows split by another's are not regrouped (publish order)
    items = [("a", 10), ("a", 10), ("b", 10), ("a", 10), (None, 10), (None, 10), ("c", 10)]
    assert _group(items) == [[0, 1], [2], [3], [4], [5], [6]]


def test_group_bounds_count_and_bytes_and_sends_a_large_row_alone():
    assert _group([("a", 1)] * 7, max_events=3) == [[0, 1, 2], [3, 4, 5], [6]]
    limit = 1000 + wire.ENVELOPE_BYTES
    items = [("a", 400), ("a", 400), ("a", 400), ("a", 5000), ("a", 10)]
    assert _group(items, max_bytes=limit) == [[0, 1], [2], [3], [4]]


def test_a_batch_of_max_bytes_fits_the_bound():
    batch = rows(50)
    bodies = [dispatcher.message(r, "paris")[0] for r in batch]
    limit = 4096
    for g in wire.group(
        list(zip(batch, bodies, strict=True)),
        lambda it: it[0][6],
        lambda it: len(it[1]),
        100,
        limit,
    ):
        body = wire.encode("PARIS", [b for _, b in g])
        assert len(body) <= limit or len(g) == 1
