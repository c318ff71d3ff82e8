"""The edges of every column type, in one list: what must cross from one site to another
unchanged (tests/integration/test_types.py). Another dialect's type test takes the same
list, with its own types and literals where they differ.

Each `Edge` is a column: its type, the values written into it (SQL literals; every column
also gets NULL in the last row), and, where the value changes when the column travels in
its JSON form (a column added after install-triggers ran, or after an ALTER TABLE while
the capture runs its after-ALTER form), what arrives instead, or None when the
application cannot write it at all in that form (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Types the edge columns use, created in each site database before the table.
TYPES_DDL = """
CREATE TYPE pair AS (a integer, b text, c bytea);
CREATE TYPE mood AS ENUM ('sad', 'happy');
"""

ALL_BYTES = "'\\x" + bytes(range(256)).hex() + "'"
TEXT = "'héllo ✓ 😀 𝄞 \\ back\\slash ''single'' \"double\" tab\t newline\n end'"
JSONB_DOC = (
    """'{"a": [1, null, {"b": "\\u00e9 \\ud83d\\ude00 \\"q\\" \\\\"}], "n": 1.50, """
    """"big": 123456789012345678901234567890.5, "e": {}}'"""
)

FLOATS = "'{-0,NaN,Infinity,-Infinity,1e300,5e-324}'"
JSONS = """ARRAY['"x"', 'null', '1', NULL]::jsonb[]"""


@dataclass(frozen=True)
class Edge:
    column: str
    sql_type: str
    values: tuple[str, ...]
    # literal -> literal that arrives instead in the JSON form, or None: not writable then
    as_json: Mapping[str, str | None] = field(default_factory=dict)


EDGES: tuple[Edge, ...] = (
    Edge("i2", "smallint", ("-32768", "32767", "0")),
    Edge("i4", "integer", ("-2147483648", "2147483647")),
    Edge("i8", "bigint", ("-9223372036854775808", "9223372036854775807")),
    Edge(
        "num",
        "numeric",
        (
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "123456789012345678901234567890.123456789012345678901234567890",
            "'1e1000'",
            "'-1e-1000'",
            "0.10",
        ),
    ),
    Edge(
        "num2",
        "numeric(38, 18)",
        ("-0.000000000000000001", "99999999999999999999.999999999999999999"),
    ),
    Edge(
        "f4",
        "real",
        ("'-0'", "'NaN'", "'Infinity'", "'-Infinity'", "'1e-45'", "'3.4028235e38'", "1.1"),
        as_json={"'-0'": "'0'"},
    ),
    Edge(
        "f8",
        "double precision",
        (
            "'-0'",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "'5e-324'",
            "'1.7976931348623157e308'",
            "0.1",
            "1e300",
        ),
        as_json={"'-0'": "'0'"},
    ),
    Edge("b", "boolean", ("true", "false")),
    Edge("t", "text", ("''", TEXT, "'NULL'")),
    Edge("vc", "varchar(20)", ("''", "'vc'")),
    Edge("ch", "char(3)", ("''", "'ab'")),
    Edge("by", "bytea", ("'\\x'", ALL_BYTES, "'\\x00'")),
    Edge(
        "tstz",
        "timestamptz",
        (
            "'4713-01-01 00:00:00+00 BC'",
            "'0001-12-31 23:59:59.999999+00 BC'",
            "'0001-01-01 00:00:00+00'",
            "'294276-12-31 23:59:59.999999+00'",
            "'infinity'",
            "'-infinity'",
            "'2026-11-24 10:00:00.123456+05:45'",
            "'1999-12-31 23:59:60+00'",  # a leap second: PostgreSQL takes it as the next second
        ),
    ),
    Edge(
        "ts",
        "timestamp",
        (
            "'4713-01-01 00:00:00 BC'",
            "'0001-12-31 23:59:59.999999 BC'",
            "'294276-12-31 23:59:59.999999'",
            "'infinity'",
            "'-infinity'",
            "'2026-01-01 00:00:00'",
            "'1999-12-31 23:59:60'",
        ),
    ),
    Edge(
        "d",
        "date",
        (
            "'4713-01-01 BC'",
            "'0001-12-31 BC'",
            "'0001-01-01'",
            "'5874897-12-31'",
            "'infinity'",
            "'-infinity'",
            "'2026-02-28'",
        ),
    ),
    Edge("tm", "time", ("'24:00:00'", "'23:59:60'", "'00:00:00'", "'23:59:59.999999'")),
    Edge("tmz", "timetz", ("'24:00:00-15:59'", "'00:00:00+15:59'", "'10:00:00.5+05:45'")),
    Edge(
        "iv",
        "interval",
        (
            "'178000000 years'",
            "'-178000000 years'",
            "'1 day -00:00:00.000001'",
            "'-1 mons +1 day -01:02:03.456789'",
            "'0'",
        ),
    ),
    Edge(
        "js",
        "jsonb",
        ("'null'", JSONB_DOC, "'[]'", "'\"x\"'", "'123'", "'{}'"),
        as_json={"'null'": "NULL"},  # JSON null and SQL NULL are the same in to_jsonb
    ),
    Edge(
        "j",
        "json",
        (
            "'null'",
            """'{"b":1,  "a":2, "a":3}'""",  # json keeps its text: spaces, duplicate keys
            """'"\\u0000"'""",  # valid json, not jsonb
            "'1e1000000'",  # valid json, past numeric's range
        ),
        as_json={
            "'null'": "NULL",
            """'{"b":1,  "a":2, "a":3}'""": """'{"a": 3, "b": 1}'""",
            """'"\\u0000"'""": None,  # to_jsonb refuses them: the write fails
            "'1e1000000'": None,
        },
    ),
    Edge(
        "u",
        "uuid",
        ("'00000000-0000-0000-0000-000000000000'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'"),
    ),
    Edge(
        "arr",
        "text[]",
        (
            "'{}'",
            "'{NULL}'",
            "'{NULL,NULL}'",
            """ARRAY['a', NULL, 'c d', '', 'q"uote', 'back\\slash', 'NULL', 'é😀']""",
            "'[0:1]={x,y}'",
        ),
        as_json={"'[0:1]={x,y}'": "'{x,y}'"},  # JSON arrays have no lower bound
    ),
    Edge("arr2", "integer[]", ("'{{1,2},{3,4}}'", "'{{NULL,NULL}}'", "'{}'")),
    Edge(
        "farr",
        "double precision[]",
        (FLOATS,),
        as_json={FLOATS: FLOATS.replace("-0", "0")},
    ),
    Edge(
        "jarr",
        "jsonb[]",
        (JSONS,),
        as_json={JSONS: JSONS.replace("'null'", "NULL")},
    ),
    Edge("comp", "pair", ("ROW(1, 'x y', '\\x00ff')::pair", "ROW(NULL, NULL, NULL)::pair")),
    Edge("mood", "mood", ("'happy'", "'sad'")),
    Edge("ip", "inet", ("'::ffff:1.2.3.4/128'", "'10.0.0.1/8'")),
    Edge("rng", "int4range", ("'empty'", "'[1,2)'", "'(,)'")),
    Edge("bits", "bit varying(8)", ("B''", "B'10101'")),
    Edge("mac", "macaddr", ("'08:00:2b:01:02:03'",)),
    Edge("x", "xml", ("'<a>é</a>'",)),
)

ROWS = max(len(e.values) for e in EDGES) + 1  # the last row: NULL everywhere

# Values a comparison that loses them would take for another (verify must not): for each,
# a column, a row whose value it is, and the neighbouring value.
NEIGHBOURS: tuple[tuple[str, int, str], ...] = (
    ("f8", 1, "'0'"),
    ("f4", 1, "'0'"),
    ("d", 1, "'4713-01-01'"),
    ("ts", 1, "'4713-01-01 00:00:00'"),
    ("tstz", 1, "'4713-01-01 00:00:00+00'"),
    ("tm", 1, "'00:00:00'"),
    ("js", 1, "NULL"),
    ("j", 1, "NULL"),
    ("t", 1, "NULL"),
    ("by", 1, "NULL"),
    ("arr", 1, "NULL"),
    ("arr", 2, "'{}'"),
    ("num", 1, "NULL"),
    ("num", 7, "0.1"),
    ("iv", 3, "'1 day'"),
)


def value(edge: Edge, row: int, as_json: bool = False) -> str | None:
    """The literal of an edge column in a row (1-based), as written or, with `as_json`, as
    it arrives in the JSON form; None if it cannot be written in that form."""
    if row > len(edge.values):
        return "NULL"
    literal = edge.values[row - 1]
    if as_json and literal in edge.as_json:
        return edge.as_json[literal]
    return literal
