"""Every column type crosses from one PostgreSQL site to another unchanged, at the edges of
its range (tests/integration/type_edges.py), through the real capture triggers, the real
cluster and the real Applier, both ways: inserted at one site, then updated at the other.

Values are compared as PostgreSQL prints them, and `bridge verify` must agree, and must
see the difference when one value is replaced by its neighbour (-0 by 0, a BC date by the
AD one, JSON null by SQL NULL...).

Two ways a value travels: `installed`, the columns exist when install-triggers runs (the
exact forms); `added`, they are added afterwards, so the capture sends them in their
JSON form (to_jsonb), and the event trigger has swapped in the after-ALTER form of the
capture function. In that form a few values change on the way, as type_edges.py says.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from bridge import verify
from bridge.apply import APPLIED, CONFLICT, Applier
from bridge.config import Config
from bridge.dialects import for_url
from bridge.event import from_dict
from tests.conftest import (
    DB_PREFIX,
    NAMES,
    SITES,
    create_site_db,
    db_of,
    make_config,
    pg_url,
    running,
    setup_site,
    sql,
    wait_for,
)
from tests.integration.type_edges import EDGES, NEIGHBOURS, ROWS, TYPES_DDL, Edge, value

pytestmark = pytest.mark.integration

COLUMNS = ",\n".join(f"    {e.column} {e.sql_type}" for e in EDGES)
# a non-key identity column (written on insert only) and a generated one (never written)
EXTRA = (
    "    seq bigint GENERATED ALWAYS AS IDENTITY,\n"
    "    gen text GENERATED ALWAYS AS (t || '/' || i4) STORED"
)
TABLE = f"CREATE TABLE edges (\n    id bigint PRIMARY KEY,\n{COLUMNS},\n{EXTRA}\n)"
BARE = "CREATE TABLE edges (id bigint PRIMARY KEY)"
ADD = "ALTER TABLE edges " + ", ".join(
    f"ADD COLUMN {line.strip().split(' ', 1)[0]} {line.strip().split(' ', 1)[1]}"
    for line in (COLUMNS + ",\n" + EXTRA).split(",\n")
)
# every kind of value as a key (part of one primary key), its edges in the rows
KEYED = """
CREATE TABLE keyed (
    d date, ts timestamptz, n numeric, f double precision, b bytea, t text, tm time,
    note text,
    PRIMARY KEY (d, ts, n, f, b, t, tm)
)
"""
KEYS = [
    "('4713-01-01 BC', '4713-01-01 00:00:00+00 BC', 'NaN', '-0', '\\x', '', '24:00:00')",
    "('4713-01-01', '4713-01-01 00:00:00+00', 0, 'NaN', '\\x00ff', 'é', '00:00:00')",
    "('infinity', '-infinity', '1e1000', '1e300', '\\xff', 'x', '23:59:59.999999')",
]
# The writing application's session: settings that change how PostgreSQL prints values;
# the capture must send the same values anyway, and give the session its settings back.
APP_SETTINGS = {
    "extra_float_digits": "0",
    "bytea_output": "escape",
    "DateStyle": "SQL, DMY",
    "IntervalStyle": "sql_standard",
    "TimeZone": "Asia/Kathmandu",
}


def insert_rows(mode: str) -> list[str]:
    rows = []
    for r in range(1, ROWS + 1):
        values = [
            value(e, r) if mode == "installed" or value(e, r, True) else "NULL" for e in EDGES
        ]
        rows.append(f"({r}, {', '.join(v or 'NULL' for v in values)})")
    names = ", ".join(e.column for e in EDGES)
    return [
        f"INSERT INTO edges (id, {names}) VALUES {', '.join(rows)}",
        *(
            f"INSERT INTO keyed (d, ts, n, f, b, t, tm, note) VALUES {k[:-1]}, 'first')"
            for k in KEYS
        ),
    ]


def expected(db: str, mode: str) -> dict[tuple[int, str], str | None]:
    """Each edge value as PostgreSQL prints it (in this database's session defaults), as
    it must arrive: written, or as it arrives in the JSON form."""
    out: dict[tuple[int, str], str | None] = {}
    for e in EDGES:
        for r in range(1, ROWS + 1):
            literal = value(e, r, as_json=mode == "added") or "NULL"
            out[(r, e.column)] = sql(db, f"SELECT CAST({literal} AS {e.sql_type})::text")[0][0]
    return out


def held(db: str) -> dict[tuple[int, str], str | None]:
    names = [e.column for e in EDGES]
    got: dict[tuple[int, str], str | None] = {}
    for row in sql(db, f"SELECT id, {', '.join(f'{n}::text' for n in names)} FROM edges"):
        for name, text in zip(names, row[1:], strict=True):
            got[(row[0], name)] = text
    return got


def table_text(db: str, table: str) -> list[Any]:
    return sql(db, f"SELECT {table}::text FROM {table} ORDER BY 1")


def same_everywhere(dbs: list[str]) -> bool:
    return all(
        table_text(dbs[0], t) == table_text(db, t) and table_text(db, t)
        for db in dbs[1:]
        for t in ("edges", "keyed")
    )


def verified(cfgs: list[Config]) -> list[str]:
    _, differing = verify.verify(cfgs[0], {c.site: c.database_url for c in cfgs[1:]})
    return differing


def two_sites(mode: str) -> list[Config]:
    cfgs = []
    for name, site in list(zip(NAMES, SITES, strict=True))[:2]:
        db = f"{DB_PREFIX}types_{mode}_{name.lower()}"
        create_site_db(db, TYPES_DDL + (TABLE if mode == "installed" else BARE) + ";" + KEYED)
        cfg = make_config(site, db, tables={"edges": "lww", "keyed": "lww"})
        setup_site(cfg)
        if mode == "added":
            sql(db, ADD)
        cfgs.append(cfg)
    return cfgs


def untracked(db: str, statement: str, *params: Any) -> None:
    """A change made behind bridge's back (capture off for this transaction)."""
    with psycopg.connect(pg_url(db)) as conn:
        conn.execute("SET LOCAL bridge.applying = 'on'")
        conn.execute(statement, params or None)


@pytest.mark.parametrize("mode", ["installed", "added"])
def test_every_edge_value_crosses_both_ways_unchanged(fresh_topology: Any, mode: str) -> None:
    cfgs = two_sites(mode)
    src, dst = (db_of(c) for c in cfgs)
    if mode == "added":  # the event trigger swapped the capture for its after-ALTER form
        body = "SELECT prosrc LIKE '%%after-ALTER form%%' FROM pg_proc WHERE proname = %s"
        assert sql(src, body, "bridge_capture_edges") == [(True,)]
    with psycopg.connect(pg_url(src), autocommit=True) as app:
        for name, setting in APP_SETTINGS.items():
            app.execute(f"SET {name} = '{setting}'")
        with app.transaction():
            for statement in insert_rows(mode):
                app.execute(statement)
        for name, setting in APP_SETTINGS.items():
            assert app.execute(f"SHOW {name}").fetchone() == (setting,), "settings given back"
    want = expected(src, mode)
    with running(*cfgs):
        count = "SELECT (SELECT count(*) FROM edges), (SELECT count(*) FROM keyed)"
        wait_for(lambda: sql(dst, count) == [(ROWS, len(KEYS))], 60, "every row at the other site")
        assert held(dst) == want
        assert table_text(dst, "keyed") == table_text(src, "keyed")
        if mode == "installed":
            assert held(src) == want
        # the other way: every row rewritten by an update at the other site, every key
        # found again by its update and its delete
        sql(dst, "UPDATE edges SET t = coalesce(t, '') || '!'")
        sql(dst, "UPDATE keyed SET note = 'second'")
        sql(dst, "DELETE FROM keyed WHERE t = 'x'")
        wait_for(
            lambda: (
                sql(src, "SELECT count(*) FROM edges WHERE t LIKE '%!'") == [(ROWS,)]
                and sql(src, "SELECT note, count(*) FROM keyed GROUP BY 1") == [("second", 2)]
            ),
            60,
            "the updates back at the first site",
        )
        wait_for(lambda: same_everywhere([src, dst]), 30, "the same rows at both sites")
    updated = {k: (v or "") + "!" if k[1] == "t" else v for k, v in want.items()}
    assert held(src) == held(dst) == updated
    seq = "SELECT id, seq, gen FROM edges ORDER BY id"
    assert sql(src, seq) == sql(dst, seq)
    for db in (src, dst):
        assert sql(db, "SELECT reason FROM bridge_conflicts") == []
    for cfg in cfgs:
        queue = fresh_topology.queue_declare(f"{cfg.queue}.dlq", passive=True)
        assert queue.method.message_count == 0
    assert verified(cfgs) == []

    if mode == "installed":
        # verify sees each value that a lossy reading would take for its neighbour
        for column, row, neighbour in NEIGHBOURS:
            edge: Edge = next(e for e in EDGES if e.column == column)
            (before,) = sql(dst, f"SELECT {column}::text FROM edges WHERE id = {row}")[0]
            untracked(dst, f"UPDATE edges SET {column} = {neighbour} WHERE id = {row}")
            assert verified(cfgs) == ["edges"], (
                f"verify missed {edge.values[row - 1]} -> {neighbour}"
            )
            untracked(
                dst,
                f"UPDATE edges SET {column} = CAST(%s AS {edge.sql_type}) WHERE id = {row}",
                before,
            )
            assert verified(cfgs) == [], f"{column} back to {before!r}"


def test_a_policy_column_is_compared_as_postgresql_orders_its_values() -> None:
    """Under `column:<v>` the incoming and the local value of v are compared by PostgreSQL:
    a BC timestamp, `infinity` and a year past 9999 (none of which a Python datetime
    holds) order as the column type orders them."""
    db = f"{DB_PREFIX}types_policy"
    create_site_db(db, "CREATE TABLE stamped (id int PRIMARY KEY, v timestamptz, n text)")
    cfg = make_config("PARIS", db, tables={"stamped": "column:v"})
    setup_site(cfg)
    applier = Applier(cfg, for_url(cfg.database_url))
    try:
        changes = [
            ("LONDON", "2026-01-01T00:00:00.000000Z", APPLIED),
            ("MADRID", "4713-01-01T00:00:00.000000Z BC", CONFLICT),
            ("MADRID", "infinity", APPLIED),
            ("LONDON", "294276-12-31T23:59:59.999999Z", CONFLICT),
            ("LONDON", "infinity", CONFLICT),  # not newer: equal
        ]
        for n, (origin, v, outcome) in enumerate(changes):
            data = {
                "table": "stamped",
                "op": "insert" if n == 0 else "update",
                "key": {"id": 1},
                "row": {"id": 1, "v": v, "n": f"change {n}"},
            }
            event = from_dict(
                {
                    "id": str(uuid.uuid4()),
                    "timestamp": f"2026-01-01T00:00:0{n}.000000Z",
                    "origin": origin,
                    "type": f"stamped.{data['op']}",
                    "data": data,
                }
            )
            (got,) = applier.apply_batch([event])
            assert got.status == outcome, (n, v, got)
    finally:
        applier.close()
    assert sql(db, "SELECT v::text, n FROM stamped") == [("infinity", "change 2")]
    reasons = [r for (r,) in sql(db, "SELECT reason FROM bridge_conflicts ORDER BY id")]
    assert len(reasons) == 3 and all(r.startswith("older than the local row by v") for r in reasons)
