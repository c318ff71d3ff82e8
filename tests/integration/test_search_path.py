"""A search_path cannot change what bridge captures or applies.

The capture runs in the application's session, under its search_path: an application
whose path puts first a schema of its own, holding a `clock_timestamp()`, tables named
`bridge_outbox` and `bridge_row_version`, overloads of `to_jsonb` and `jsonb_build_object`
and operators `+` and `||`, must get exactly the events a normal session gets, stamped by
the real clock, in bridge's own outbox. bridge's own connections (the applier's) take
neither the role's nor the database's search_path. A table in another schema is synced
whatever the application's search_path.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from bridge import install, verify
from bridge.config import Config
from bridge.dialects import for_url
from bridge.errors import SchemaError
from tests.conftest import (
    DB_PREFIX,
    ORDERS_DDL,
    SiteMaker,
    create_site_db,
    db_of,
    make_config,
    outbox_empty,
    pg_url,
    running,
    setup_site,
    sql,
    truncate,
    wait_for,
)

pytestmark = pytest.mark.integration

# A schema of the application's with what would hijack an unqualified name: each returns
# something no real capture or apply produces.
TRICKS = """
CREATE SCHEMA tricks;
CREATE FUNCTION tricks.clock_timestamp() RETURNS timestamptz
    LANGUAGE sql AS $$ SELECT '2000-01-01 00:00:00+00'::timestamptz $$;
CREATE TABLE tricks.bridge_outbox (LIKE public.bridge_outbox INCLUDING DEFAULTS);
CREATE TABLE tricks.bridge_row_version (LIKE public.bridge_row_version INCLUDING ALL);
INSERT INTO tricks.bridge_row_version (table_name, row_key, ts, origin)
    SELECT 'orders', jsonb_build_object('id', id), '3000-01-01 00:00:00+00', 'TRICKS'
      FROM generate_series(1, 10) AS id;
CREATE FUNCTION tricks.to_jsonb(anyelement) RETURNS jsonb
    LANGUAGE sql AS $$ SELECT '"hijacked to_jsonb"'::pg_catalog.jsonb $$;
CREATE FUNCTION tricks.jsonb_build_object(text, jsonb) RETURNS jsonb
    LANGUAGE sql AS $$ SELECT '{"hijacked": "jsonb_build_object"}'::pg_catalog.jsonb $$;
CREATE FUNCTION tricks.later(timestamptz, interval) RETURNS timestamptz
    LANGUAGE sql AS $$ SELECT '1999-01-01 00:00:00+00'::timestamptz $$;
CREATE OPERATOR tricks.+ (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = tricks.later);
CREATE FUNCTION tricks.glue(jsonb, jsonb) RETURNS jsonb
    LANGUAGE sql AS $$ SELECT '{"hijacked": "||"}'::pg_catalog.jsonb $$;
CREATE OPERATOR tricks.|| (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = tricks.glue);
"""
HOSTILE_PATH = "tricks, pg_catalog, public"
AHEAD = dt.timedelta(hours=1)  # a version of row 1 applied from a site whose clock is ahead

WRITES = (
    "INSERT INTO public.orders (id, customer, amount, note, updated_at, blob) VALUES "
    "(1, 'a', 1.5, 'n', '2026-01-01T00:00:00Z', '\\x00ff'), "
    "(2, 'b', -0.25, NULL, NULL, NULL), (3, 'c', 3, 'x', '2026-01-02T00:00:00Z', '\\x01')",
    "UPDATE public.orders SET note = 'changed', amount = amount * 2 WHERE id = 1",
    "UPDATE public.orders SET id = 4 WHERE id = 2",  # a key change: update 4, delete 2
    "DELETE FROM public.orders WHERE id = 3",
)


Captured = tuple[str, Any, dt.datetime]  # type, payload, created_at


def captured(db: str) -> list[Captured]:
    return [
        (type_, payload, created_at)
        for type_, payload, created_at in sql(
            db, "SELECT type, payload, created_at FROM public.bridge_outbox ORDER BY seq"
        )
    ]


def write(db: str, path: str | None) -> tuple[dt.datetime, dt.datetime, str]:
    """The writes, in one transaction of a session with `path`; the real clock before and
    after, and the session's search_path after them."""
    with psycopg.connect(pg_url(db), autocommit=True) as conn:
        if path:
            conn.execute(f"SET search_path = {path}")
        before = conn.execute("SELECT pg_catalog.clock_timestamp()").fetchone()[0]  # type: ignore[index]
        with conn.transaction():
            for statement in WRITES:
                conn.execute(statement)
            inside = conn.execute("SHOW search_path").fetchone()[0]  # type: ignore[index]
        after = conn.execute("SELECT pg_catalog.clock_timestamp()").fetchone()[0]  # type: ignore[index]
        assert conn.execute("SHOW search_path").fetchone()[0] == inside  # type: ignore[index]
    return before, after, inside


def test_a_hostile_search_path_captures_exactly_what_a_normal_one_does() -> None:
    db = DB_PREFIX + "search_path_capture"
    create_site_db(db)
    setup_site(make_config("PARIS", db))
    sql(db, TRICKS)
    version = sql(db, "SELECT clock_timestamp()")[0][0] + AHEAD

    def run(path: str | None) -> tuple[list[Captured], dt.datetime, dt.datetime]:
        truncate(db, "public.orders, public.bridge_outbox, public.bridge_row_version")
        sql(
            db,
            "INSERT INTO public.bridge_row_version (table_name, row_key, ts, origin) "
            "VALUES ('orders', '{\"id\": 1}', %s, 'LONDON')",
            version,
        )
        before, after, inside = write(db, path)
        assert inside == (path or '"$user", public'), "the session's search_path changed"
        return captured(db), before, after

    normal, _, _ = run(None)
    hostile, before, after = run(HOSTILE_PATH)

    assert [(t, p) for t, p, _ in hostile] == [(t, p) for t, p, _ in normal]
    assert [t for t, _, _ in hostile] == [
        "orders.insert",
        "orders.insert",
        "orders.insert",
        "orders.update",
        "orders.update",
        "orders.delete",
        "orders.delete",
    ]
    assert "hijacked" not in str([p for _, p, _ in hostile])
    us = dt.timedelta(microseconds=1)
    for type_, payload, stamp in hostile:
        if payload["key"] == {"id": 1}:
            # after the version applied here, and after its own insert (still pending)
            expected = version + (us if type_ == "orders.insert" else 2 * us)
            assert stamp == expected, (type_, payload["key"])
        else:
            assert before <= stamp <= after, (type_, payload["key"], stamp)
    assert sql(db, "SELECT count(*) FROM tricks.bridge_outbox")[0][0] == 0
    assert sql(db, "SELECT count(*) FROM tricks.bridge_row_version")[0][0] == 10


def test_an_application_search_path_without_bridges_schema_is_captured() -> None:
    """Before bridge named its tables with their schema, such an application could not
    write at all: `relation "bridge_outbox" does not exist`."""
    db = DB_PREFIX + "search_path_elsewhere"
    create_site_db(db, "CREATE SCHEMA sales; CREATE TABLE sales.items (id int PRIMARY KEY, v text)")
    setup_site(make_config("PARIS", db, tables={"sales.items": "lww"}))
    with psycopg.connect(pg_url(db), autocommit=True) as conn:
        conn.execute("SET search_path = sales")
        conn.execute("INSERT INTO items VALUES (1, 'x')")
    assert [r[0] for r in sql(db, "SELECT type FROM public.bridge_outbox")] == [
        "sales.items.insert"
    ]


def test_bridges_own_tables_out_of_its_search_paths_reach_are_named() -> None:
    """bridge's connections take no search_path from the role or the database: a site
    whose bridge tables were created in another schema (reached through such a setting)
    is told where they are and how to reach them, not offered a second `bridge init`."""
    db = DB_PREFIX + "search_path_legacy"
    create_site_db(db, ORDERS_DDL + "; CREATE SCHEMA legacy")
    pinned = make_config("PARIS", db, database_url=pg_url(db) + "?search_path=legacy,public")
    setup_site(pinned)
    assert sql(db, "SELECT to_regclass('legacy.bridge_outbox') IS NOT NULL")[0][0]
    dialect = for_url(pinned.database_url)
    plain = make_config("PARIS", db)
    with dialect.connect(plain.database_url) as conn, pytest.raises(SchemaError) as refused:
        install.require_initialised(dialect, conn, "PARIS")
    assert "in schema legacy" in str(refused.value)
    assert "?search_path=legacy" in str(refused.value)
    with dialect.connect(pinned.database_url) as conn:
        install.require_initialised(dialect, conn, "PARIS")
        assert install.bridge_schema(dialect, conn) == "legacy"


def hostile_role_path(db: str) -> None:
    """The application's schema at `db`, with an `orders` and bridge's tables of its own,
    first on the search_path of every new session there (ALTER ROLE ... IN DATABASE)."""
    sql(db, TRICKS)
    sql(db, "CREATE TABLE tricks.orders (LIKE public.orders INCLUDING ALL)")
    for table in ("bridge_inbox", "bridge_meta", "bridge_conflicts"):
        sql(db, f"CREATE TABLE tricks.{table} (LIKE public.{table} INCLUDING ALL)")
    sql(db, "INSERT INTO tricks.bridge_meta (key, value) VALUES ('site', '\"TRICKS\"')")
    sql(db, f'ALTER ROLE CURRENT_USER IN DATABASE "{db}" SET search_path = {HOSTILE_PATH}')


def count(cfg: Config, table: str) -> int:
    return int(sql(db_of(cfg), f"SELECT count(*) FROM {table}")[0][0])


def test_a_hostile_role_search_path_does_not_redirect_bridge(sites: dict[str, Config]) -> None:
    """MADRID's role gets a search_path whose first schema holds its own `orders`, bridge
    tables and functions: MADRID's bridge still applies into public's, and the
    application's sessions there (which get that path) are captured as anywhere else."""
    cfgs = list(sites.values())
    london, madrid = sites["LONDON"], sites["MADRID"]
    hostile_role_path(db_of(madrid))
    assert sql(db_of(madrid), "SHOW search_path")[0][0] == HOSTILE_PATH
    with running(*cfgs):
        sql(db_of(london), "INSERT INTO orders (id, customer) VALUES (1, 'london')")
        sql(db_of(madrid), "INSERT INTO public.orders (id, customer) VALUES (2, 'madrid')")
        wait_for(lambda: count(madrid, "public.orders") == 2, 30, "LONDON's row at MADRID")
        sql(db_of(madrid), "UPDATE public.orders SET note = 'by madrid' WHERE id = 1")
        wait_for(
            # (named with their schema: the tests' own sessions at MADRID get that path too)
            lambda: (
                all(count(c, "public.orders") == 2 for c in cfgs)
                and all(count(c, "public.bridge_outbox") == 0 for c in cfgs)
                and count(madrid, "public.bridge_inbox") == 1
            ),
            60,
            "both rows everywhere, the outboxes drained",
        )
    peers = {c.site: c.database_url for c in cfgs if c.site != "PARIS"}
    assert verify.verify(sites["PARIS"], peers)[1] == []
    assert sql(db_of(london), "SELECT note FROM orders WHERE id = 1") == [("by madrid",)]
    for table in ("orders", "bridge_inbox", "bridge_outbox", "bridge_conflicts"):
        assert count(madrid, f"tricks.{table}") == 0, table
    assert sql(db_of(madrid), "SELECT origin FROM public.bridge_row_version ORDER BY 1") == [
        ("MADRID",),
        ("MADRID",),
    ]


def test_a_table_in_another_schema_through_applications_with_their_own_search_paths(
    make_sites: SiteMaker,
) -> None:
    """`sales.items` at three sites; each site's application has its own search_path
    (only `sales`; `sales, public`; the default, naming the schema)."""
    ddl = (
        "CREATE SCHEMA sales; CREATE TABLE sales.items "
        "(id int PRIMARY KEY, name text NOT NULL, qty int)"
    )
    sites = make_sites(ddl, tables={"sales.items": "lww"})
    cfgs = list(sites.values())
    paths = {"PARIS": "sales", "LONDON": "sales, public", "MADRID": None}

    def app(cfg: Config, *statements: str) -> None:
        with psycopg.connect(cfg.database_url, autocommit=True) as conn:
            path = paths[cfg.site]
            if path:
                conn.execute(f"SET search_path = {path}")
            table = "items" if path else "sales.items"
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement.format(t=table))

    def items(cfg: Config) -> list[tuple[Any, ...]]:
        return sql(db_of(cfg), "SELECT * FROM sales.items ORDER BY id")

    with running(*cfgs):
        for n, cfg in enumerate(cfgs):
            base = 10 * (n + 1)
            app(
                cfg,
                f"INSERT INTO {{t}} VALUES ({base}, '{cfg.site}', 1), ({base + 1}, 'x', 2)",
                f"UPDATE {{t}} SET qty = qty + 10 WHERE id = {base}",
                f"DELETE FROM {{t}} WHERE id = {base + 1}",
            )
        wait_for(
            lambda: all(len(items(c)) == 3 and outbox_empty(c) for c in cfgs),
            60,
            "three rows everywhere, the outboxes drained",
        )
    assert items(sites["MADRID"]) == [(10, "PARIS", 11), (20, "LONDON", 11), (30, "MADRID", 11)]
    peers = {c.site: c.database_url for c in cfgs if c.site != "PARIS"}
    assert verify.verify(sites["PARIS"], peers)[1] == []
    types = sql(db_of(sites["PARIS"]), "SELECT DISTINCT type FROM bridge_archive ORDER BY 1")
    assert types == [("sales.items.delete",), ("sales.items.insert",), ("sales.items.update",)]
