import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import codec, dispatcher, event
from bridge.errors import EventError

pytestmark = pytest.mark.unit

CASES = [
    (None, "text"),
    ("héllo wörld ✓ 日本", "text"),
    ("", "text"),
    (Decimal("12345678901234567890.123456789012345678"), "decimal"),
    (Decimal("-0.000000001"), "decimal"),
    (2**63 - 1, "int"),
    (-(2**70), "int"),
    (1.5, "float"),
    (True, "bool"),
    (b"\x00\xffbinary\x10", "bytes"),
    (dt.datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=dt.UTC), "timestamptz"),
    (dt.datetime(2026, 11, 24, 10, 0, 0, 123456), "timestamp"),
    (dt.date(2026, 2, 28), "date"),
    (dt.time(23, 59, 59, 1), "time"),
    (uuid.UUID("0b6f1c7e-2f7e-4a0b-9d7e-1f2e3d4c5b6a"), "uuid"),
    ('{"a": [1, 2, {"b": null}]}', "json"),
]


@pytest.mark.parametrize(("value", "kind"), CASES)
def test_value_round_trip_through_json(value, kind):
    wire = json.loads(json.dumps(codec.encode_value(value)))
    assert codec.decode_value(wire, kind) == value


def test_decimal_keeps_full_precision_as_string():
    assert codec.encode_value(Decimal("0.10")) == "0.10"
    assert codec.encode_value(Decimal("1E+3")) == "1000"


def test_timestamp_with_zone_is_utc_z():
    paris = dt.timezone(dt.timedelta(hours=1))
    ts = dt.datetime(2026, 11, 24, 11, 0, 0, 5, tzinfo=paris)
    assert codec.encode_value(ts) == "2026-11-24T10:00:00.000005Z"


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_any_decimal_round_trips(value):
    assert codec.decode_value(codec.encode_value(value), "decimal") == value


@given(st.datetimes(timezones=st.just(dt.UTC)))
def test_any_aware_datetime_round_trips(value):
    assert codec.decode_value(codec.encode_value(value), "timestamptz") == value


@given(st.binary())
def test_any_bytes_round_trip(value):
    assert codec.decode_value(codec.encode_value(value), "bytes") == value


def test_row_digest_is_order_independent_of_keys():
    a = {"id": 1, "amount": Decimal("1.50")}
    b = {"amount": Decimal("1.50"), "id": 1}
    assert codec.row_digest(a) == codec.row_digest(b)
    assert codec.row_digest(a) != codec.row_digest({"id": 1, "amount": Decimal("1.5")})


def make_event(**over):
    raw = {
        "id": str(uuid.uuid4()),
        "timestamp": "2026-11-24T10:00:00.123456Z",
        "origin": "PARIS",
        "type": "orders.update",
        "data": {
            "table": "orders",
            "op": "update",
            "key": {"id": 42},
            "row": {"id": 42, "amount": "12.50"},
        },
    }
    raw.update(over)
    return raw


def test_event_round_trip():
    raw = make_event()
    ev = event.decode(json.dumps(raw).encode())
    assert ev.to_dict() == raw
    assert event.decode(ev.encode()) == ev
    assert ev.timestamp == dt.datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=dt.UTC)


def test_outbox_row_message_is_the_event_with_its_data_as_stored():
    """The dispatcher does not parse the outbox payload: it puts the JSON text PostgreSQL
    gives (spaces after ':' and ',') into the body as is; the event is the same."""
    raw = make_event()
    ts = dt.datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=dt.UTC)
    stored = json.dumps(raw["data"], ensure_ascii=False)  # "key": {"id": 42}, ... like jsonb
    row = (7, raw["id"], ts, raw["origin"], raw["type"], stored)
    body, props = dispatcher.message(row, "paris")
    assert event.decode(body) == event.decode(json.dumps(raw).encode())
    assert event.decode(body).encode() == event.decode(json.dumps(raw).encode()).encode()
    assert (props.message_id, props.type, props.user_id) == (raw["id"], raw["type"], "paris")
    assert props.headers == {"x-bridge-origin": raw["origin"]}
    assert props.timestamp == int(ts.timestamp())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (json.dumps({"id": "x"}).encode(), "missing field"),
        (json.dumps(make_event(id="nope")).encode(), "not a UUID"),
        (json.dumps(make_event(timestamp="yesterday")).encode(), "ISO-8601"),
        (json.dumps(make_event(timestamp="2026-11-24T10:00:00")).encode(), "ISO-8601"),
        (json.dumps(make_event(type="orders.delete")).encode(), "does not match"),
        (
            json.dumps(
                make_event(data={"table": "orders", "op": "drop", "key": {"id": 1}})
            ).encode(),
            "op one of",
        ),
        (
            json.dumps(make_event(data={"table": "orders", "op": "update", "key": {}})).encode(),
            "key must be",
        ),
        (
            json.dumps(
                make_event(data={"table": "orders", "op": "update", "key": {"id": 1}})
            ).encode(),
            "row must be",
        ),
        (b" " * (event.MAX_MESSAGE_BYTES + 1), "exceeds"),
    ],
)
def test_bad_events_are_rejected_with_a_reason(body, message):
    with pytest.raises(EventError, match=message):
        event.decode(body)
