"""Every statement every template renders, checked by the real PostgreSQL, inside
transactions that are rolled back.

Why the server and not a parser: sqlglot cannot read PL/pgSQL, and even PostgreSQL's
CREATE FUNCTION only checks a PL/pgSQL body's syntax; the SQL inside it (tables, columns,
functions, types, the 100-argument limit) is resolved when a branch first runs. So:

- init and capture_install run as bridge runs them, capture_install twice: the second run
  proves each DROP TRIGGER drops what CREATE TRIGGER made (or it fails: already exists);
- every branch of every capture function runs (insert, update, key change, delete, and
  the apply's echo suppression), and what it captured is checked event by event;
- every other statement is PREPAREd (parsed and analysed against the real tables without
  running: no parameter values needed), or, for what cannot be prepared (SET, LISTEN),
  run in a savepoint that is rolled back;
- capture_uninstall and uninit run, and what they should have dropped must be gone.

The table shapes are tests/sqlcheck.py's, the unit tests' (introspected here, and checked
equal). Tests named `test_the_check_catches_*` break a statement on purpose and expect
the check to fail.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Json, Jsonb

from bridge import identifiers
from bridge.dialects.postgresql import PostgresDialect
from tests import sqlcheck
from tests.conftest import DB_PREFIX, create_site_db, pg_url
from tests.sqlcheck import SHAPES, Rendered, Shape

pytestmark = pytest.mark.integration

DB = DB_PREFIX + "sql_on_server"
PG = PostgresDialect()
# run by their own steps below; every other template is prepared or run in a savepoint
INSTALLS = ("init", "capture_install", "capture_uninstall", "uninit")
PREPARABLE = re.compile(r"^\s*(WITH|SELECT|INSERT|UPDATE|DELETE|VALUES)\b", re.IGNORECASE)
# a GENERATED ALWAYS identity that is not the key (below: a known bug)
LEDGER = Shape(
    "ledger",
    (("id", "bigint", "int8"), ("seq", "bigint", "int8"), ("note", "text", "text")),
    pk=("id",),
    identity="seq",
)


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    create_site_db(DB, "CREATE SCHEMA sales;\n" + ";\n".join(s.ddl() for s in (*SHAPES, LEDGER)))
    yield DB
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}"')


@pytest.fixture
def tx(database: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection inside one transaction, rolled back at the end: nothing stays."""
    with psycopg.connect(pg_url(database), autocommit=True) as conn:
        with conn.transaction(force_rollback=True):
            yield conn
        assert bridge_tables(conn) == set(), "the checks' transaction left something behind"


# --- helpers -------------------------------------------------------------------------------


def bridge_tables(conn: psycopg.Connection[Any]) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'bridge\\_%'"
        ).fetchall()
    }


def render(conn: psycopg.Connection[Any]) -> dict[str, list[Rendered]]:
    """Every template rendered for the shapes as introspected on the server."""
    infos = [PG.introspect(conn, s.table) for s in SHAPES]
    by_template: dict[str, list[Rendered]] = {}
    for r in sqlcheck.render_all(PG, infos):
        by_template.setdefault(r.template, []).append(r)
    return by_template


def run(conn: psycopg.Connection[Any], rendered: list[Rendered]) -> None:
    for r in rendered:
        for stmt in r.statements:
            try:
                conn.execute(stmt)
            except psycopg.Error as exc:
                raise AssertionError(f"{r.label} refused by PostgreSQL: {exc}\n{stmt}") from exc


def install(conn: psycopg.Connection[Any], sql: dict[str, list[Rendered]]) -> None:
    run(conn, sql["init"])
    run(conn, sql["capture_install"])
    # again, as `bridge install-triggers` after a column change: every DROP TRIGGER of
    # the install must drop its trigger, or its CREATE TRIGGER fails (already exists)
    run(conn, sql["capture_install"])


def value(base: str, n: int) -> Any:
    """A value of the base type, different for each n."""
    return {
        "int2": n,
        "int4": n,
        "int8": n,
        "text": f"v{n}",
        "numeric": Decimal(f"{n}.25"),
        "timestamptz": dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=n),
        "timestamp": dt.datetime(2026, 1, 1) + dt.timedelta(seconds=n),
        "date": dt.date(2026, 1, n),
        "time": dt.time(10, n),
        "uuid": uuid.UUID(int=n),
        "jsonb": Jsonb({"n": n}),
        "json": Json({"n": n}),
        "_text": [f"t{n}", None],
        "bool": n % 2 == 1,
        "float8": n + 0.5,
        "bytea": bytes([n]),
    }[base]


def ref(shape: Shape) -> str:
    return ".".join(f'"{p}"' for p in shape.table.split("."))


def outbox(conn: psycopg.Connection[Any], shape: Shape) -> list[tuple[Any, ...]]:
    """(op, first key column as text, row keys) of the shape's captured changes."""
    return conn.execute(
        "SELECT payload ->> 'op', payload -> 'key' ->> %s, "
        "ARRAY(SELECT jsonb_object_keys(payload -> 'row')) "
        "FROM bridge_outbox WHERE payload ->> 'table' = %s ORDER BY seq",
        (shape.pk[0], shape.table),
    ).fetchall()


def quoted(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def write_every_way(conn: psycopg.Connection[Any], shape: Shape) -> tuple[str, str]:
    """An insert, an update keeping the key, a key change, a delete: as an application
    would, each one statement. Returns the two keys the row had (first key column)."""
    computed = dict(shape.generated)  # computed by the table itself
    row = {name: value(base, 1) for name, _, base in shape.columns if name not in computed}
    if shape.identity:  # far from what the identity's sequence hands out
        row[shape.identity] = 10**9
    where = " AND ".join(f'"{c}" = %s' for c in shape.pk)
    old_key = [row[c] for c in shape.pk]
    conn.execute(
        f"INSERT INTO {ref(shape)} ({quoted(list(row))}) "
        + ("OVERRIDING SYSTEM VALUE " if shape.identity else "")
        + f"VALUES ({', '.join(['%s'] * len(row))})",
        list(row.values()),
    )
    kept = next((c for c in row if c not in shape.pk), shape.pk[0])
    conn.execute(f'UPDATE {ref(shape)} SET "{kept}" = "{kept}" WHERE {where}', old_key)
    pk0, base0 = shape.pk[0], next(b for n, _, b in shape.columns if n == shape.pk[0])
    new = "DEFAULT" if pk0 == shape.identity else "%s"  # an identity can only be renumbered
    moved = conn.execute(
        f'UPDATE {ref(shape)} SET "{pk0}" = {new} WHERE {where} RETURNING "{pk0}"',
        ([] if new == "DEFAULT" else [value(base0, 2)]) + old_key,
    ).fetchone()
    assert moved is not None
    new_key = [moved[0], *old_key[1:]]
    conn.execute(f"DELETE FROM {ref(shape)} WHERE {where}", new_key)
    return str(old_key[0]), str(new_key[0])


def fire_every_branch(conn: psycopg.Connection[Any], shape: Shape) -> None:
    """Every branch of the capture function runs; what it captured is checked event by
    event."""
    k1, k2 = write_every_way(conn, shape)
    got = outbox(conn, shape)
    assert Counter((op, key) for op, key, _ in got) == Counter(
        [
            ("insert", k1),
            ("update", k1),  # the update that kept the key
            ("update", k2),  # the key change: the row under its new key …
            ("delete", k1),  # … and its old key deleted everywhere
            ("delete", k2),
        ]
    ), got
    inserted = next(keys for op, _, keys in got if op == "insert")
    assert sorted(inserted) == sorted(name for name, _, _ in shape.columns), inserted


def leftovers(conn: psycopg.Connection[Any], shape: Shape) -> list[str]:
    """What bridge installed for the table that is still there."""
    function = identifiers.object_name("bridge_capture_", shape.table)
    found = [
        f"trigger {r[0]}"
        for r in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal",
            (PG.table_ref(shape.table).ref,),
        ).fetchall()
    ]
    found += [
        f"function {r[0]}"
        for r in conn.execute(
            "SELECT oid::regprocedure::text FROM pg_proc WHERE proname = %s", (function,)
        ).fetchall()
    ]
    found += [
        f"bridge_meta {r[0]}"
        for r in conn.execute(
            "SELECT key FROM bridge_meta WHERE key = %s", (f"trigger:{shape.table}",)
        ).fetchall()
    ]
    return found


def check_statement(conn: psycopg.Connection[Any], r: Rendered, stmt: str) -> None:
    """PREPARE it (parse analysis against the real tables, nothing runs), or run it in a
    savepoint rolled back when PREPARE cannot take it (SET LOCAL, LISTEN)."""
    text, params = sqlcheck.placeholders_to_params(stmt)
    try:
        if PREPARABLE.match(text):
            conn.execute(f"PREPARE bridge_check AS {text}")
            conn.execute("DEALLOCATE bridge_check")
        else:
            assert not params, f"{r.label}: cannot check parameters {params} of {stmt}"
            with conn.transaction(force_rollback=True):
                conn.execute(text)
    except psycopg.Error as exc:
        raise AssertionError(f"{r.label} refused by PostgreSQL: {exc}\n{text}") from exc


# --- the checks ----------------------------------------------------------------------------


def test_the_shapes_are_what_introspection_finds(tx: psycopg.Connection[Any]) -> None:
    """The unit tests render the same shapes without a server: they must be real."""
    for shape in SHAPES:
        assert PG.introspect(tx, shape.table) == shape.info(PG), shape.table


def test_install_twice_then_every_branch_of_every_capture_function(
    tx: psycopg.Connection[Any],
) -> None:
    sql = render(tx)
    install(tx, sql)
    for shape in SHAPES:
        fire_every_branch(tx, shape)


def test_the_apply_transaction_is_not_captured(tx: psycopg.Connection[Any]) -> None:
    sql = render(tx)
    install(tx, sql)
    with tx.transaction(force_rollback=True):
        run(tx, sql["apply_begin"])
        for shape in SHAPES:
            write_every_way(tx, shape)
            assert outbox(tx, shape) == [], shape.table
    # the savepoint took the setting with it: changes are captured again
    fire_every_branch(tx, SHAPES[0])


def test_every_other_statement_is_accepted_by_the_server(tx: psycopg.Connection[Any]) -> None:
    sql = render(tx)
    assert set(INSTALLS) <= set(sql), "a template the checks run by name is gone"
    install(tx, sql)
    checked = set()
    for template, rendered in sorted(sql.items()):
        if template in INSTALLS:
            continue
        for r in rendered:
            for stmt in r.statements:
                check_statement(tx, r, stmt)
            checked.add(template)
    assert checked == set(sqlcheck.template_names(PG)) - set(INSTALLS)


def test_uninstall_and_uninit_drop_everything(tx: psycopg.Connection[Any]) -> None:
    sql = render(tx)
    install(tx, sql)
    for shape in SHAPES:
        assert leftovers(tx, shape), f"nothing installed for {shape.table}?"
    run(tx, sql["capture_uninstall"])
    for shape in SHAPES:
        assert leftovers(tx, shape) == [], shape.table
        write_every_way(tx, shape)
        assert outbox(tx, shape) == [], f"{shape.table} still captured"
    before = bridge_tables(tx)
    assert {"bridge_outbox", "bridge_inbox", "bridge_meta"} <= before
    run(tx, sql["uninit"])
    assert bridge_tables(tx) == set(), f"uninit left {bridge_tables(tx)} of {before}"


# --- the checks can fail -------------------------------------------------------------------


def _mutate(rendered: list[Rendered], old: str, new: str, count: int = 1) -> list[Rendered]:
    """The same statements with `old` replaced (from the end, `count` times)."""
    out, done = [], 0
    for r in rendered:
        stmts = []
        for stmt in r.statements:
            if done < count and old in stmt:
                head, _, tail = stmt.rpartition(old)
                stmt, done = head + new + tail, done + 1
            stmts.append(stmt)
        out.append(Rendered(r.template, r.table, tuple(stmts)))
    assert done == count, f"{old!r} not found {count} time(s): adapt this test to the templates"
    return out


def test_the_check_catches_a_misnamed_drop_trigger_in_the_install(
    tx: psycopg.Connection[Any],
) -> None:
    sql = render(tx)
    sql["capture_install"] = _mutate(
        sql["capture_install"][:1],
        "DROP TRIGGER IF EXISTS bridge_capture_",
        "DROP TRIGGER IF EXISTS x",
    )
    with pytest.raises(AssertionError, match="already exists"):
        install(tx, sql)


def test_the_check_catches_an_uninstall_that_leaves_the_function(
    tx: psycopg.Connection[Any],
) -> None:
    sql = render(tx)
    install(tx, sql)
    orders = [r for r in sql["capture_uninstall"] if r.table == SHAPES[0].table]
    kept = [
        Rendered(r.template, r.table, tuple(s for s in r.statements if "FUNCTION" not in s))
        for r in orders
    ]
    run(tx, kept)
    assert [x.split(" ")[0] for x in leftovers(tx, SHAPES[0])] == ["function"]


def test_the_check_catches_an_error_inside_a_function_body(tx: psycopg.Connection[Any]) -> None:
    """CREATE FUNCTION accepts a body calling a function that does not exist: only running
    the branch finds it. The last clock_timestamp() of the body (its last branch) breaks."""
    sql = render(tx)
    sql["capture_install"] = _mutate(
        sql["capture_install"], "clock_timestamp()", "clock_timestamp_missing()"
    )
    install(tx, sql)  # accepted
    with pytest.raises(psycopg.errors.UndefinedFunction):
        fire_every_branch(tx, SHAPES[0])


def test_upsert_into_a_table_whose_identity_is_not_its_key(tx: psycopg.Connection[Any]) -> None:
    info = PG.introspect(tx, LEDGER.table)
    assert info == LEDGER.info(PG)
    rendered = sqlcheck.render_all(PG, [info])
    run(tx, [r for r in rendered if r.template == "init"])
    [upsert] = [r for r in rendered if r.template == "apply_upsert"]
    check_statement(tx, upsert, upsert.statements[0])
