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

# (wire value, kind, json_as_text) -> the text the column type's input parses
TO_TEXT = [
    (None, "text", True, None),
    ("héllo ✓ 日本 \\ 'q' \"d\"", "text", True, "héllo ✓ 日本 \\ 'q' \"d\""),
    ("", "text", True, ""),
    (2**63 - 1, "int", True, "9223372036854775807"),
    ("12", "int", True, "12"),  # an oid's to_jsonb
    (
        Decimal("123456789012345678901234567890.123456789"),
        "decimal",
        True,
        "123456789012345678901234567890.123456789",
    ),
    ("NaN", "decimal", True, "NaN"),
    ("-0", "float", True, "-0"),
    (Decimal("1" + "0" * 300), "float", True, "1" + "0" * 300),  # to_jsonb of 1e300
    ("-Infinity", "float", True, "-Infinity"),
    (True, "bool", True, "true"),
    (False, "bool", True, "false"),
    ("AP8Q", "bytes", True, b"\x00\xff\x10"),  # base64: the exact form
    ("\\x00ff10", "bytes", True, b"\x00\xff\x10"),  # hex: to_jsonb's form
    ("", "bytes", True, b""),
    ("\\x", "bytes", True, b""),
    ("4713-01-01T00:00:00.000000Z BC", "timestamptz", True, "4713-01-01T00:00:00.000000Z BC"),
    ("2025-12-31T19:00:00.5+00:00", "timestamptz", True, "2025-12-31T19:00:00.5+00:00"),
    ("infinity", "date", True, "infinity"),
    ("24:00:00", "time", True, "24:00:00"),
    ('{"a": [1, null]}', "json", True, '{"a": [1, null]}'),  # the document's text
    ('"x"', "json", False, '"\\"x\\""'),  # a JSON string document, embedded
    ({"a": [1, None, Decimal("1.50")]}, "json", False, '{"a": [1, null, 1.50]}'),
    (None, "json", False, None),  # JSON null in the JSON form: SQL NULL (a known loss)
    ('{a,NULL,"c d"}', "array", True, '{a,NULL,"c d"}'),
]


@pytest.mark.parametrize(("value", "kind", "json_as_text", "text"), TO_TEXT)
def test_to_text_gives_what_the_database_input_parses(value, kind, json_as_text, text):
    assert codec.to_text(value, kind, json_as_text) == text


@pytest.mark.parametrize(
    ("value", "kind"), [("not base64!", "bytes"), ("\\xzz", "bytes"), (7, "bytes")]
)
def test_to_text_refuses_what_neither_form_has(value, kind):
    with pytest.raises(ValueError):
        codec.to_text(value, kind)


def test_arrays_and_composites_in_their_json_form_are_structured():
    assert codec.is_structured([1, [2]], "array")
    assert codec.is_structured({"a": 1}, "record")
    assert not codec.is_structured({"a": 1}, "json")  # a document: text for json's input
    assert not codec.is_structured("{1,2}", "array")


def test_event_json_keeps_every_digit_of_its_numbers():
    text = '{"n":123456789012345678901234567890.123456789,"f":1e300,"z":-0.0,"i":7}'
    value = codec.loads(text)
    assert value["n"] == Decimal("123456789012345678901234567890.123456789")
    assert (
        codec.dumps(value)
        == '{"n":123456789012345678901234567890.123456789,"f":1E+300,"z":-0.0,"i":7}'
    )
    assert codec.loads(codec.dumps(value)) == value
    assert codec.dumps({"b": 1, "a": "é"}, sort_keys=True) == '{"a":"é","b":1}'


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "[-Infinity]"])
def test_event_json_refuses_what_is_not_json(text):
    with pytest.raises(ValueError):
        codec.loads(text)


@given(st.binary())
def test_any_bytes_in_either_form(value):
    assert codec.to_text(codec.encode_value(value), "bytes") == value
    assert codec.to_text("\\x" + value.hex(), "bytes") == value


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_any_decimal_number_reads_and_writes_back_exactly(value):
    assert codec.loads(codec.dumps([value])) == [value]
    assert Decimal(codec.to_text(value, "decimal")) == value


def test_decimal_keeps_full_precision_as_string():
    assert codec.encode_value(Decimal("0.10")) == "0.10"
    assert codec.encode_value(Decimal("1E+3")) == "1000"


def test_timestamp_with_zone_is_utc_z():
    paris = dt.timezone(dt.timedelta(hours=1))
    ts = dt.datetime(2026, 11, 24, 11, 0, 0, 5, tzinfo=paris)
    assert codec.encode_value(ts) == "2026-11-24T10:00:00.000005Z"


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
    assert ev.json_text is None  # an event of before json_text: every JSON column as text


def test_event_values_keep_their_digits_and_a_float_key_reads_as_before():
    data = {
        "table": "t",
        "op": "update",
        "key": {"f": 1e300},
        "row": {"f": 1e300, "n": 0.1},
        "json_text": ["doc"],
    }
    body = json.dumps(make_event(type="t.update", data=data)).replace("0.1", "0." + "1" * 40)
    ev = event.decode(body.encode())
    assert ev.row == {"f": Decimal("1E+300"), "n": Decimal("0." + "1" * 40)}
    # the key is a float, whose JSON text is what bridge_row_version holds for it
    assert ev.key == {"f": 1e300} and json.dumps(ev.key) == '{"f": 1e+300}'
    assert ev.json_text == {"doc"}
    assert event.decode(ev.encode()) == ev
    assert "0." + "1" * 40 in ev.encode().decode()


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
        (json.dumps(make_event()).replace('"12.50"', "NaN").encode(), "not JSON"),
        (
            json.dumps(
                make_event(
                    data={
                        "table": "orders",
                        "op": "update",
                        "key": {"id": 1},
                        "row": {"id": 1},
                        "json_text": "doc",
                    }
                )
            ).encode(),
            "json_text must be a list",
        ),
    ],
)
def test_bad_events_are_rejected_with_a_reason(body, message):
    with pytest.raises(EventError, match=message):
        event.decode(body)


def test_decimals_are_written_fast_and_a_string_like_the_mark_stays_a_string():
    value = {"a": Decimal("1.50"), "b": [Decimal("-0"), Decimal("1E+5")], "s": "x"}
    assert codec.dumps(value) == '{"a":1.50,"b":[-0,1E+5],"s":"x"}'
    assert codec.dumps(value, spaced=True) == '{"a": 1.50, "b": [-0, 1E+5], "s": "x"}'
    # a string holding what the fast path marks a decimal with is written as a string
    tricky = {"d": Decimal("2.5"), "s": "\x001.5\x00"}
    assert codec.loads(codec.dumps(tricky)) == tricky
    with pytest.raises(ValueError):
        codec.dumps([Decimal("NaN")])
    with pytest.raises(TypeError):
        codec.dumps([object()])
