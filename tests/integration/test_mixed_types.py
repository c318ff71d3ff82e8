"""Values across engines: every common type sent both ways between a PostgreSQL site and
MariaDB sites through the real cluster, compared in bridge's exact form (what `bridge
verify` compares), and the values a destination cannot hold: each a logged conflict with
the database's reason there, never a silent truncation. docs/types.md is the table this
checks."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from bridge import verify
from tests.conftest import running, wait_for
from tests.federation import app_sql, count, exact_rows, make_federation, same_rows

pytestmark = pytest.mark.integration

DDL = {
    "postgresql": """
CREATE TABLE kinds (
    id    bigint PRIMARY KEY,
    num   numeric(20, 6),
    ts    timestamptz,
    tsn   timestamp,
    d     date,
    tm    time,
    flag  boolean,
    u     uuid,
    t     text,
    v     varchar(10),
    bin   bytea,
    doc   jsonb,
    f     double precision
)""",
    "mariadb": """
CREATE TABLE kinds (
    id    BIGINT PRIMARY KEY,
    num   DECIMAL(20, 6),
    ts    TIMESTAMP(6) NULL,
    tsn   DATETIME(6),
    d     DATE,
    tm    TIME(6),
    flag  BOOLEAN,
    u     UUID,
    t     LONGTEXT,
    v     VARCHAR(10),
    bin   LONGBLOB,
    doc   JSON,
    f     DOUBLE
) CHARSET = utf8mb4""",
}
COLUMNS = "id, num, ts, tsn, d, tm, flag, u, t, v, bin, doc, f"
BIG = "é" * 600_000  # 1.2 MB of UTF-8 in one value

UTC = dt.UTC
ROWS: list[tuple[Any, ...]] = [
    (
        1,
        Decimal("12345678901234.123456"),
        dt.datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC),
        dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
        dt.date(2000, 2, 29),
        dt.time(23, 59, 59, 500000),
        True,
        uuid.UUID("0b6f6b1e-2c1d-4c55-9d7e-1b2c3d4e5f60"),
        "unicode ✓ 𝄞 \"quoted\" 'single' back\\slash\ttab\nnewline",
        "",
        b"\x00\x01\xfe\xff" * 64,
        '{"a": [1, 2.5, "x"], "b": {"c": null}}',
        0.1,
    ),
    (2, Decimal("-0.000001"), None, None, None, None, False, None, "", None, b"", "[]", -2.5),
    (3, None, None, None, None, None, None, None, BIG, None, None, None, None),
]


@pytest.fixture
def fed(fresh_topology: Any, request: pytest.FixtureRequest) -> dict[str, Any]:
    return make_federation(
        f"mt_{request.node.name[5:20]}", "mariadb", ddl=DDL, tables={"kinds": "lww"}
    )


def insert(cfg: Any, rows: list[tuple[Any, ...]], offset: int) -> None:
    for row in rows:
        values = (row[0] + offset, *row[1:])
        marks = ", ".join(["%s"] * len(values))
        app_sql(cfg, f"INSERT INTO kinds ({COLUMNS}) VALUES ({marks})", *values)


def test_every_type_travels_both_ways_unchanged(fed: dict[str, Any]) -> None:
    cfgs = list(fed.values())
    with running(*cfgs):
        insert(fed["PARIS"], ROWS, 0)  # PostgreSQL -> MariaDB
        insert(fed["LONDON"], ROWS, 10)  # MariaDB -> PostgreSQL and MariaDB
        wait_for(
            lambda: all(count(c, "kinds") == 6 for c in cfgs) and same_rows(cfgs, "kinds"),
            90,
            "six rows, the same at every site",
        )
        peers = {s: c.database_url for s, c in fed.items() if s != "PARIS"}
        sums, differing = verify.verify(fed["PARIS"], peers)
        assert differing == [], sums
        for chunk_rows in (10_000, 2):  # ranges across dialects compared through Python
            compared = verify.compare(fed["PARIS"], peers, chunk_rows=chunk_rows)
            assert compared.ok, compared.to_json()
    by_id = {r[0]: r for r in exact_rows(fed["MADRID"], "kinds")}
    one = by_id[1]
    assert one[1] == "12345678901234.123456"
    assert one[2] == "2026-11-28T10:00:00.123456Z"
    assert one[3] == "1999-12-31T23:59:59.999999"
    assert one[4] == "2000-02-29"
    assert one[5] == "23:59:59.5"
    assert one[7] == "0b6f6b1e-2c1d-4c55-9d7e-1b2c3d4e5f60"
    assert one[8] == ROWS[0][8]
    assert one[9] == ""  # an empty string stays empty (not NULL) between these engines
    assert by_id[11][1:] == one[1:]  # the same row, sent the other way
    assert by_id[3][8] == BIG and by_id[13][8] == BIG
    assert by_id[2][9] is None and by_id[2][8] == ""


CANNOT_HOLD = [
    # what a PostgreSQL site can hold and a MariaDB site cannot, and MariaDB's reason
    ("num", "123456789012345678.5", "Out of range"),
    ("v", "eleven chars", "Data too long"),
    ("tsn", "10000-01-01 00:00:00", "Incorrect datetime value"),
    ("d", "0044-03-15 BC", "Incorrect date value"),
]


@pytest.mark.parametrize("column,value,reason", CANNOT_HOLD, ids=[c[0] for c in CANNOT_HOLD])
def test_a_value_a_site_cannot_hold_is_a_logged_conflict(
    fed: dict[str, Any], column: str, value: str, reason: str
) -> None:
    pg_type = {"num": "numeric", "v": "text", "tsn": "timestamp", "d": "date"}[column]
    if column == "v":
        app_sql(fed["PARIS"], "ALTER TABLE kinds ALTER COLUMN v TYPE varchar(20)")
    if column == "num":
        app_sql(fed["PARIS"], "ALTER TABLE kinds ALTER COLUMN num TYPE numeric(30, 6)")
    cfgs = list(fed.values())
    with running(*cfgs):
        app_sql(
            fed["PARIS"],
            f"INSERT INTO kinds (id, {column}) VALUES (1, %s::{pg_type})",
            value,
        )
        app_sql(fed["PARIS"], "INSERT INTO kinds (id, t) VALUES (2, 'next')")
        wait_for(
            lambda: all(count(c, "kinds", "id = 2") == 1 for c in cfgs[1:]),
            60,
            "the next change applied after the refused one",
        )
    for cfg in cfgs[1:]:
        assert count(cfg, "kinds", "id = 1") == 0  # not written truncated or rounded
        reasons = app_sql(cfg, "SELECT reason FROM bridge_conflicts")
        assert len(reasons) == 1 and reason in reasons[0][0], reasons
