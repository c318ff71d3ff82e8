"""The bridge event: five fields as JSON, and its AMQP properties.

```json
{"id": "0b6f…", "timestamp": "2026-11-24T10:00:00.123456Z", "origin": "PARIS",
 "type": "orders.update",
 "data": {"table": "orders", "op": "update", "key": {"id": 42}, "row": {...},
          "json_text": ["doc"]}}
```
`data.row` values are in the forms bridge/codec.py describes; `json_text` names the JSON
columns whose value is the document's text (absent: every JSON column, as bridge sent
before the row carried whole rows).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from bridge import codec
from bridge.errors import EventError

OPS = ("insert", "update", "delete")
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# The most an event's `data` may take as JSON: the capture refuses a change whose row would
# make a longer one (a message over MAX_MESSAGE_BYTES is dead-lettered by every receiver).
# The rest of the message (id, timestamp, origin, type) takes less than 300 bytes.
MAX_PAYLOAD_BYTES = MAX_MESSAGE_BYTES - 1024


@dataclass(frozen=True)
class Event:
    id: str
    timestamp: dt.datetime
    origin: str
    type: str
    data: dict[str, Any]
    # Came through bridge.replay from the archive site (bridge replay / repair), not from
    # its origin: set by the consumer from the delivery, never part of the message.
    relayed: bool = field(default=False, compare=False)

    @property
    def repair(self) -> bool:
        """A repair event (`bridge repair`): the winning version of a row, sent again under a
        new id to sites that differ; applied even where that version is already known."""
        return self.relayed and self.data.get("repair") is True

    @property
    def table(self) -> str:
        return str(self.data["table"])

    @property
    def op(self) -> str:
        return str(self.data["op"])

    @property
    def key(self) -> dict[str, Any]:
        key: dict[str, Any] = self.data["key"]
        return key

    @cached_property
    def key_text(self) -> str:
        """The key as bridge_row_version holds it (JSON, keys sorted), computed once."""
        return json.dumps(self.key, sort_keys=True)

    @property
    def row(self) -> dict[str, Any] | None:
        row: dict[str, Any] | None = self.data.get("row")
        return row

    @property
    def seen(self) -> dt.datetime | None:
        """The version of the row its origin knew when the change was made (None if none,
        or from a bridge that did not send it)."""
        text = self.data.get("seen")
        if not isinstance(text, str):
            return None
        try:
            return parse_timestamp(text)
        except ValueError:
            return None

    @property
    def json_text(self) -> frozenset[str] | None:
        """JSON columns whose value in `row` is the document's text; None: all of them."""
        names = self.data.get("json_text")
        return None if names is None else frozenset(names)

    @property
    def timestamp_text(self) -> str:
        return format_timestamp(self.timestamp)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp": self.timestamp_text,
            "origin": self.origin,
            "type": self.type,
            "data": self.data,
        }

    def encode(self) -> bytes:
        return encode(self.id, self.timestamp, self.origin, self.type, _json(self.data))


def _json(value: Any) -> str:
    return codec.dumps(value)


def encode(event_id: str, timestamp: dt.datetime, origin: str, type_: str, data: str) -> bytes:
    """The message body of an event whose `data` is already JSON text (as the outbox holds
    it: the dispatcher does not parse and serialise it again)."""
    head = _json(
        {"id": event_id, "timestamp": format_timestamp(timestamp), "origin": origin, "type": type_}
    )
    return f'{head[:-1]},"data":{data}}}'.encode()


def format_timestamp(ts: dt.datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError("event timestamps must carry a time zone")
    return ts.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> dt.datetime:
    ts = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        raise ValueError("no time zone")
    return ts.astimezone(dt.UTC)


def decode(body: bytes) -> Event:
    """Parse and validate a message body. Raises EventError saying what is wrong."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise EventError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        raw = codec.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise EventError(f"not JSON: {exc}") from None
    return from_dict(raw)


def from_dict(raw: Any) -> Event:
    if not isinstance(raw, dict):
        raise EventError("event is not a JSON object")
    missing = [f for f in ("id", "timestamp", "origin", "type", "data") if f not in raw]
    if missing:
        raise EventError(f"missing field(s): {', '.join(missing)}")
    try:
        event_id = str(uuid.UUID(str(raw["id"])))
    except ValueError:
        raise EventError(f"id {raw['id']!r} is not a UUID") from None
    try:
        timestamp = parse_timestamp(str(raw["timestamp"]))
    except ValueError:
        raise EventError(f"timestamp {raw['timestamp']!r} is not ISO-8601 with a zone") from None
    origin, type_, data = raw["origin"], raw["type"], raw["data"]
    if not isinstance(origin, str) or not origin:
        raise EventError("origin must be a non-empty string")
    if not isinstance(data, dict):
        raise EventError("data must be a JSON object")
    table, op, key = data.get("table"), data.get("op"), data.get("key")
    if not isinstance(table, str) or op not in OPS:
        raise EventError("data.table must be a string and data.op one of insert/update/delete")
    if type_ != f"{table}.{op}":
        raise EventError(f"type {type_!r} does not match data ({table}.{op})")
    if not isinstance(key, dict) or not key:
        raise EventError("data.key must be a non-empty object")
    row = data.get("row")
    if op != "delete" and not isinstance(row, dict):
        raise EventError(f"data.row must be an object for an {op}")
    json_text = data.get("json_text")
    if json_text is not None and not (
        isinstance(json_text, list) and all(isinstance(n, str) for n in json_text)
    ):
        raise EventError("data.json_text must be a list of column names")
    # A float key column travels as a JSON number (to_jsonb, as it always did): read it as
    # a float, whose JSON text (the row version's key) is the one bridge always wrote.
    data["key"] = {k: float(v) if isinstance(v, Decimal) else v for k, v in key.items()}
    return Event(event_id, timestamp, origin, type_, data)
