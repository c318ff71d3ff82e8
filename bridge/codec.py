"""Values of a row as JSON, the same for every dialect.

A value travels in one of two forms (docs/architecture.md lists what a receiver accepts):

- bridge's exact form, for the key and for the columns the capture function knew when it
  was installed: integers and booleans as JSON, bytes as base64, timestamps as ISO-8601
  with six fractional digits (`Z` = UTC for columns with a time zone) and a ` BC` suffix
  before year 1, everything else (decimals, floats, JSON documents, arrays, dates, times,
  intervals...) as the database's own text of the value, which its input parses back
  exactly (`-0`, `NaN`, `Infinity`, `24:00:00`, `infinity`, `4713-01-01 BC`);
- the database's JSON form of the value (PostgreSQL's `to_jsonb`), for a column added after
  install-triggers ran: numbers as JSON numbers, bytes as `\\x` hex, JSON documents
  embedded, arrays as JSON arrays, composites as objects, the rest as strings.

Both forms go back into the database as text that its input function parses (`to_text`),
never through a Python type that cannot hold every value (BC dates, 24:00, years past 9999).
Event JSON is read with decimals for its non-integer numbers (`loads`) and written back
without rounding them (`dumps`). `canonical` and `row_digest` turn rows of values into
the text `bridge verify` compares.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
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
    "array",  # PostgreSQL arrays: text `{...}`, JSON form a (nested) JSON array
    "record",  # composite types: text `(...)`, JSON form an object
    "other",  # any other type: its text (its JSON form may be a cast to json)
)

UTC = dt.UTC


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str | bytes) -> Any:
    """Parse event JSON: non-integer numbers as Decimal (a JSON number from a database's
    JSON form of a numeric or float column keeps every digit); NaN/Infinity literals,
    which are not JSON, are refused."""
    return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)


def dumps(value: Any, sort_keys: bool = False, spaced: bool = False) -> str:
    """JSON text of a value read by `loads`: compact (`spaced`: with a space after `:` and
    `,`, as PostgreSQL prints jsonb), non-ASCII as is, decimals written with the digits
    they were read with."""
    separators = (", ", ": ") if spaced else (",", ":")
    decimals = 0

    def decimal_mark(obj: Any) -> str:
        # the stdlib's C encoder cannot write a Decimal as a number: it writes a marked
        # string instead, replaced below by the number's digits
        nonlocal decimals
        if not isinstance(obj, Decimal):
            raise TypeError(f"{type(obj).__name__} is not JSON serializable")
        if not obj.is_finite():
            raise ValueError(f"{obj} is not a JSON number")
        decimals += 1
        return _MARK + str(obj) + _MARK

    text = json.dumps(
        value, separators=separators, ensure_ascii=False, sort_keys=sort_keys, default=decimal_mark
    )
    if not decimals:
        return text
    out, marked = _MARKED.subn(r"\1", text)
    if marked == decimals:
        return out
    # a string of the value looked like a mark (NUL, digits, NUL): written the slow way
    parts: list[str] = []
    _write(value, parts, sort_keys, separators)
    return "".join(parts)


_MARK = "\x00"  # never unescaped in JSON text: the encoder writes it as \u0000
_MARKED = re.compile(r'"\\u0000([-+.0-9Ee]+)\\u0000"')


def _write(value: Any, out: list[str], sort_keys: bool, separators: tuple[str, str]) -> None:
    comma, colon = separators
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        out.append(str(value))
    elif isinstance(value, dict):
        out.append("{")
        items = sorted(value.items()) if sort_keys else value.items()
        for n, (k, v) in enumerate(items):
            out.append((comma if n else "") + json.dumps(str(k), ensure_ascii=False) + colon)
            _write(v, out, sort_keys, separators)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for n, v in enumerate(value):
            if n:
                out.append(comma)
            _write(v, out, sort_keys, separators)
        out.append("]")
    else:
        out.append(json.dumps(value, ensure_ascii=False))


def to_text(value: Any, kind: str, json_as_text: bool = True) -> str | bytes | None:
    """A wire value (either form) of a column of `kind` -> what the database's input
    function parses back into the same value: text, or bytes for a bytes column.
    `json_as_text`: a JSON column's string is the document's text (exact form), not a
    JSON string document (JSON form). Raises ValueError for a value neither form has.
    Arrays and composites in their JSON form are not text: the apply statement converts
    them (jsonb_to_record), see `is_structured`."""
    if value is None:
        return None
    if kind == "bytes":
        if not isinstance(value, str):
            raise ValueError(f"bytes must be a base64 or \\x hex string, not {value!r}")
        try:
            if value.startswith("\\x"):  # base64 has no backslash: the JSON form, hex
                return bytes.fromhex(value[2:])
            return base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            raise ValueError(f"bytes value {value[:40]!r} is neither base64 nor \\x hex") from None
    if kind == "json":
        if json_as_text and isinstance(value, str):
            return value
        # the document itself: written as PostgreSQL prints it (a json column keeps it)
        return dumps(value, spaced=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):  # not from `loads`; a float's repr reads back exactly
        return repr(value)
    if isinstance(value, dict | list):
        return dumps(value)
    raise ValueError(f"a {kind} value cannot be {type(value).__name__} {value!r}")


def is_structured(value: Any, kind: str) -> bool:
    """An array or composite in its JSON form (a JSON array or object): the database
    converts it from JSON rather than from text."""
    return kind != "json" and isinstance(value, dict | list)


def encode_value(value: Any) -> Any:
    """A Python value read from a database -> its exact form, for the values Python can
    hold (tests compare rows read by psycopg with the rows events carry)."""
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
