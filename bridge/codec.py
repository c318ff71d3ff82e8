"""Values of a row as JSON, the same for every dialect.

Decimals travel as strings (full precision), timestamps as ISO-8601 (UTC with `Z` when the
column has a time zone), bytes as base64, integers as JSON numbers (exact in Python at any
size), JSON documents as their text (so a JSON `null` stays distinct from SQL NULL).
Capture templates produce exactly this encoding in SQL; `encode_value` produces it in
Python (used by `verify`), `decode_value` turns it back into a Python value for a column of
a given kind.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from decimal import Decimal
from typing import Any

KINDS = (
    "int",
    "float",
    "decimal",
    "bool",
    "text",
    "bytes",
    "timestamptz",
    "timestamp",
    "date",
    "time",
    "json",
    "uuid",
)

UTC = dt.UTC


def encode_value(value: Any) -> Any:
    """A Python value read from a database -> its JSON form."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value).replace("inf", "Infinity").replace("nan", "NaN")
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            utc = value.astimezone(UTC).replace(tzinfo=None)
            return utc.isoformat(timespec="microseconds") + "Z"
        return value.isoformat(timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    raise TypeError(f"cannot encode {type(value).__name__} value {value!r}")


INFINITIES = ("infinity", "-infinity")


def decode_value(value: Any, kind: str) -> Any:
    """The JSON form of a value -> the Python value for a column of `kind`. Infinite
    dates and timestamps stay strings: the database casts them back."""
    if value is None:
        return None
    if kind in ("timestamptz", "timestamp", "date") and value in INFINITIES:
        return value
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "decimal":
        return Decimal(str(value))
    if kind == "bool":
        if isinstance(value, str):
            return value.lower() in ("t", "true", "1")
        return bool(value)
    if kind == "bytes":
        return base64.b64decode(value, validate=True)
    if kind == "timestamptz":
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if kind == "timestamp":
        return dt.datetime.fromisoformat(str(value)).replace(tzinfo=None)
    if kind == "date":
        return dt.date.fromisoformat(str(value))
    if kind == "time":
        return dt.time.fromisoformat(str(value))
    if kind == "json":
        return value if isinstance(value, str) else json.dumps(value)
    if kind == "uuid":
        return uuid.UUID(str(value))
    if kind == "text":
        return value if isinstance(value, str) else json.dumps(value)
    raise ValueError(f"unknown column kind {kind!r}")


def canonical(row: dict[str, Any]) -> str:
    """A row's canonical JSON text: keys sorted, values encoded."""
    return json.dumps(
        {k: encode_value(v) for k, v in row.items()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def row_digest(row: dict[str, Any]) -> int:
    """64-bit digest of a row, to sum into an order-independent table checksum."""
    return int.from_bytes(hashlib.sha256(canonical(row).encode()).digest()[:8], "big")
