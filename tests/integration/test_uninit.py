"""`bridge uninit` (the inverse of init) through the CLI, against real PostgreSQL."""

from __future__ import annotations

import subprocess

import psycopg
import pytest
from click.testing import CliRunner

from bridge.cli import main
from tests.conftest import DB_PREFIX, create_site_db, pg_url, sql

pytestmark = pytest.mark.integration

DB = DB_PREFIX + "uninit"
ENV = {
    "BRIDGE_SITE": "PARIS",
    "BRIDGE_DATABASE_URL": pg_url(DB),
    "BRIDGE_AMQP_URL": "amqp://paris:x@127.0.0.1:5680/",
    "BRIDGE_SITES": "PARIS,LONDON",
}


def bridge(*args, env=ENV):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def flat(text: str) -> str:
    return " ".join(text.split())  # click wraps long lines


def bridge_objects() -> list[tuple[str, str]]:
    """Every object named bridge_* in the database: relations, functions, triggers."""
    return sql(
        DB,
        "SELECT 'relation', relname::text FROM pg_class WHERE relname LIKE 'bridge%%' "
        "UNION ALL SELECT 'function', proname::text FROM pg_proc WHERE proname LIKE 'bridge%%' "
        "UNION ALL SELECT 'trigger', tgname::text FROM pg_trigger WHERE tgname LIKE 'bridge%%' "
        "ORDER BY 1, 2",
    )


@pytest.fixture
def captured():
    """bridge initialised, `orders` and `sales.items` captured, one change published."""
    create_site_db(DB)
    sql(DB, "CREATE SCHEMA sales")
    sql(DB, "CREATE TABLE sales.items (id int PRIMARY KEY, name text)")
    assert bridge("init").exit_code == 0
    out = bridge("install-triggers", "-t", "orders", "-t", "sales.items")
    assert out.exit_code == 0, out.output
    sql(DB, "INSERT INTO orders (id, customer) VALUES (1, 'x')")
    sql(DB, "UPDATE bridge_outbox SET published_at = clock_timestamp()")
    return DB


def test_refuses_while_triggers_are_installed_and_says_how_to_remove_them(captured):
    before = bridge_objects()
    out = bridge("uninit")
    assert out.exit_code == 1
    text = flat(out.output)
    assert "RefusedError: not removing bridge: capture triggers are still installed on " in text
    assert "orders, sales.items" in text
    assert "bridge uninstall-triggers --table orders --table sales.items" in text
    assert "--remove-triggers" in text
    assert bridge_objects() == before
    # the command it names works, and then uninit does
    assert (
        bridge("uninstall-triggers", "--table", "orders", "--table", "sales.items").exit_code == 0
    )
    out = bridge("uninit")
    assert out.exit_code == 0, out.output
    assert bridge_objects() == []


def test_sql_prints_what_would_run_and_changes_nothing(captured):
    before = bridge_objects()
    out = bridge("uninit", "--sql")
    assert out.exit_code == 1  # the same checks as a real run
    assert "capture triggers are still installed" in flat(out.output)
    out = bridge("uninit", "--sql", "--remove-triggers")
    assert out.exit_code == 0, out.output
    assert 'DROP TRIGGER IF EXISTS bridge_capture_insert ON "public"."orders";' in out.output
    assert 'DROP TRIGGER IF EXISTS bridge_capture_delete ON "sales"."items";' in out.output
    assert 'DROP FUNCTION IF EXISTS "sales"."bridge_capture_items"();' in out.output
    assert "DROP TABLE IF EXISTS bridge_outbox, bridge_inbox" in out.output
    assert "site PARIS" not in out.stdout  # only SQL on stdout
    assert bridge_objects() == before
    # the printed SQL is exactly what a real uninit runs: run by hand, it removes bridge
    subprocess.run(
        ["psql", "-v", "ON_ERROR_STOP=1", "-q", pg_url(DB)],
        input=out.stdout,  # the SQL; what it reports goes to stderr
        text=True,
        check=True,
        capture_output=True,
    )
    assert bridge_objects() == []
    sql(DB, "INSERT INTO orders (id, customer) VALUES (2, 'y')")  # writes work without bridge


def test_unpublished_changes_need_an_explicit_flag_and_are_reported(captured):
    sql(DB, "INSERT INTO orders (id, customer) VALUES (2, 'y'), (3, 'z')")  # not published
    before = bridge_objects()
    out = bridge("uninit", "--remove-triggers")
    assert out.exit_code == 1
    text = flat(out.output)
    assert "bridge_outbox holds 2 change(s) not yet published" in text
    assert "--discard-unpublished" in text
    assert bridge_objects() == before
    # both reasons at once, so one retry is enough
    out = bridge("uninit")
    assert "capture triggers are still installed" in flat(out.output)
    assert "2 change(s) not yet published" in flat(out.output)

    out = bridge("uninit", "--remove-triggers", "--discard-unpublished")
    assert out.exit_code == 0, out.output
    assert "warning: site PARIS: 2 unpublished change(s) discarded" in out.output
    assert "capture removed from orders, sales.items" in out.output
    assert bridge_objects() == []
    assert sql(DB, "SELECT count(*) FROM orders")[0][0] == 3  # business rows stay
    # init installs it again; uninit of a database without bridge changes nothing
    assert bridge("init").exit_code == 0
    assert bridge("uninit").exit_code == 0
    assert bridge("uninit").exit_code == 0
    assert bridge_objects() == []


def test_a_capture_function_left_by_a_dropped_table_is_removed(captured):
    sql(DB, "DROP TABLE sales.items")  # its triggers go with it, its function stays
    assert ("function", "bridge_capture_items") in bridge_objects()
    out = bridge("uninit", "--remove-triggers")
    assert out.exit_code == 0, out.output
    assert "capture removed from orders" in out.output
    assert bridge_objects() == []


def test_refuses_while_bridge_run_publishes_from_the_database(captured):
    before = bridge_objects()
    with psycopg.connect(pg_url(DB), autocommit=True) as dispatcher:
        # what `bridge run`'s dispatcher holds while it runs (dispatcher_lease.sql.j2)
        dispatcher.execute("SELECT pg_advisory_lock(hashtext('bridge.dispatcher'))")
        out = bridge("uninit", "--remove-triggers")
        assert out.exit_code == 1
        assert "a `bridge run` is publishing from this database" in flat(out.output)
        assert "stop it first" in flat(out.output)
    assert bridge_objects() == before


def test_refuses_another_sites_database(captured):
    out = bridge("uninit", "--remove-triggers", env={**ENV, "BRIDGE_SITE": "LONDON"})
    assert out.exit_code == 1
    assert "belongs to site PARIS, not LONDON" in out.output
    assert ("relation", "bridge_outbox") in bridge_objects()


def test_a_failing_statement_leaves_everything_in_place(captured):
    # a view of the user's on bridge_outbox: the DROP TABLE, last, fails
    sql(DB, "CREATE VIEW my_outbox AS SELECT * FROM bridge_outbox")
    before = bridge_objects()
    out = bridge("uninit", "--remove-triggers")
    assert out.exit_code == 1
    assert "DatabaseError: statement" in out.output and "nothing was changed" in out.output
    # the triggers removed before the failure came back with the rollback
    assert bridge_objects() == before
    assert ("trigger", "bridge_capture_insert") in before


def test_after_uninit_the_commands_say_to_run_init(captured):
    assert bridge("uninit", "--remove-triggers").exit_code == 0
    for command in (["status"], ["cleanup"], ["cleanup", "--dry-run"]):
        out = bridge(*command)
        assert out.exit_code == 1
        assert out.output == (
            "Error: SchemaError: bridge is not initialised in this database: run `bridge init`\n"
        )
    out = bridge("status", env={**ENV, "BRIDGE_SITE": "LONDON"})
    assert out.exit_code == 1
    assert bridge("init").exit_code == 0
    out = bridge("status", env={**ENV, "BRIDGE_SITE": "LONDON"})
    assert out.exit_code == 1 and "belongs to site PARIS, not LONDON" in out.output
