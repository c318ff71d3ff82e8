"""init / install-triggers / uninstall-triggers through the CLI, against real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from bridge.cli import main
from tests.conftest import DB_PREFIX, amqp_url_for, create_site_db, pg_url, sql

pytestmark = pytest.mark.integration

DB = DB_PREFIX + "install"


@pytest.fixture
def env():
    create_site_db(DB)
    sql(DB, "CREATE TABLE nokey (a int)")
    sql(DB, 'CREATE TABLE "Mixed Case" (id int PRIMARY KEY)')
    return {
        "BRIDGE_SITE": "PARIS",
        "BRIDGE_DATABASE_URL": pg_url(DB),
        "BRIDGE_AMQP_URL": "amqp://paris:x@127.0.0.1:5680/",
        "BRIDGE_SITES": "PARIS,LONDON",
        "BRIDGE_TABLES": "orders",
    }


def bridge(env, *args):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def bridge_tables():
    return {
        r[0] for r in sql(DB, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'bridge%%'")
    }


# insert, update and delete are captured; a TRUNCATE is refused
CAPTURE_TRIGGERS = [
    "bridge_capture_delete",
    "bridge_capture_insert",
    "bridge_capture_truncate",
    "bridge_capture_update",
]


def triggers(table="orders"):
    return sorted(
        r[0]
        for r in sql(
            DB,
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal",
            table,
        )
    )


def test_sql_prints_and_changes_nothing(env):
    out = bridge(env, "init", "--sql")
    assert out.exit_code == 0, out.output
    assert "CREATE TABLE IF NOT EXISTS bridge_outbox" in out.output
    assert bridge_tables() == set()
    assert bridge(env, "init").exit_code == 0
    before = bridge_tables()
    assert {
        "bridge_outbox",
        "bridge_inbox",
        "bridge_row_version",
        "bridge_conflicts",
        "bridge_archive",
        "bridge_meta",
    } <= before

    out = bridge(env, "install-triggers", "--table", "orders", "--sql")
    assert out.exit_code == 0, out.output
    assert 'CREATE TRIGGER bridge_capture_insert AFTER INSERT ON "orders"' in out.output
    assert "current_setting('bridge.applying', true)" in out.output
    assert triggers() == []

    # the printed SQL is exactly what a real install runs: applying it by hand installs
    subprocess.run(
        ["psql", "-v", "ON_ERROR_STOP=1", "-q", pg_url(DB)],
        input=out.output,
        text=True,
        check=True,
        capture_output=True,
    )
    assert triggers() == CAPTURE_TRIGGERS
    sql(DB, "INSERT INTO orders (id, customer) VALUES (1, 'x')")
    assert sql(DB, "SELECT type, origin FROM bridge_outbox") == [("orders.insert", "PARIS")]

    out = bridge(env, "uninstall-triggers", "--table", "orders", "--sql")
    assert "DROP TRIGGER IF EXISTS bridge_capture_insert" in out.output
    assert len(triggers()) == len(CAPTURE_TRIGGERS)


def test_install_is_repeatable_and_uninstall_removes(env):
    assert bridge(env, "init").exit_code == 0
    assert bridge(env, "init").exit_code == 0
    for _ in range(2):
        out = bridge(env, "install-triggers", "-t", "orders")
        assert out.exit_code == 0, out.output
    assert len(triggers()) == len(CAPTURE_TRIGGERS)
    sql(DB, "INSERT INTO orders (id, customer) VALUES (1, 'x')")
    assert sql(DB, "SELECT count(*) FROM bridge_outbox")[0][0] == 1
    out = bridge(env, "uninstall-triggers", "-t", "orders")
    assert out.exit_code == 0, out.output
    assert triggers() == []
    sql(DB, "INSERT INTO orders (id, customer) VALUES (2, 'y')")
    assert sql(DB, "SELECT count(*) FROM bridge_outbox")[0][0] == 1
    assert bridge(env, "uninstall-triggers", "-t", "orders").exit_code == 0


def test_quoted_mixed_case_table(env):
    assert bridge(env, "init").exit_code == 0
    out = bridge(env, "install-triggers", "-t", "Mixed Case")
    assert out.exit_code == 1
    assert "not a valid identifier" in out.output
    assert 'see "Table names" in docs/configuration.md' in out.output


def test_table_names_are_case_sensitive_and_may_name_a_schema(env):
    assert bridge(env, "init").exit_code == 0
    sql(DB, "CREATE TABLE Items (id int PRIMARY KEY)")  # unquoted: stored as items
    sql(DB, 'CREATE TABLE "Lines" (id int PRIMARY KEY)')
    sql(DB, "CREATE SCHEMA sales")
    sql(DB, "CREATE TABLE sales.orders (id int PRIMARY KEY)")
    out = bridge(env, "install-triggers", "-t", "Items")
    assert out.exit_code == 1
    assert "table 'Items' does not exist" in out.output and "case-sensitive" in out.output
    assert 'see "Table names" in docs/configuration.md' in out.output
    out = bridge(env, "install-triggers", "-t", "items", "-t", "Lines", "-t", "sales.orders")
    assert out.exit_code == 0, out.output
    assert len(triggers("items")) == len(triggers('"Lines"')) == len(triggers("sales.orders")) == 4
    sql(DB, "INSERT INTO sales.orders VALUES (1)")
    assert sql(DB, "SELECT type FROM bridge_outbox") == [("sales.orders.insert",)]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("missing", "does not exist"),
        ("nokey", "has no primary key"),
        ('orders"; DROP TABLE orders; --', "not a valid identifier"),
    ],
)
def test_bad_table_is_refused_and_nothing_is_half_installed(env, table, message):
    assert bridge(env, "init").exit_code == 0
    out = bridge(env, "install-triggers", "-t", "orders", "-t", table)
    assert out.exit_code == 1
    assert message in out.output
    assert triggers() == []  # orders came first, and was not installed either
    assert sql(DB, "SELECT count(*) FROM bridge_meta WHERE key LIKE 'trigger:%%'")[0][0] == 0


def test_install_before_init_says_what_to_do(env):
    out = bridge(env, "install-triggers", "-t", "orders")
    assert out.exit_code == 1
    assert "run `bridge init` first" in out.output


def test_init_refuses_another_sites_database(env):
    assert bridge(env, "init").exit_code == 0
    out = bridge({**env, "BRIDGE_SITE": "LONDON"}, "init")
    assert out.exit_code == 1
    assert "initialised for site PARIS" in out.output


def test_status_reports_drift(env, fresh_topology):
    # the site's broker user and queues: status is healthy (exit 0) but for the drift
    env = {**env, "BRIDGE_AMQP_URL": amqp_url_for("PARIS")}
    assert bridge(env, "init").exit_code == 0
    assert bridge(env, "install-triggers").exit_code == 0
    out = bridge(env, "status")
    assert out.exit_code == 0, out.output
    assert "capture trigger up to date" in out.output
    sql(DB, "ALTER TABLE orders ADD COLUMN extra text")
    out = bridge(env, "status")
    assert out.exit_code == 1
    assert "columns changed since the trigger was installed" in out.output
    assert out.output.splitlines()[-1].startswith(
        "UNHEALTHY: table orders: columns changed since the trigger was installed"
    )


def test_config_error_names_the_key(env):
    out = bridge({k: v for k, v in env.items() if k != "BRIDGE_SITES"}, "init")
    assert out.exit_code == 1
    assert "missing configuration key 'sites'" in out.output


def test_python_dash_m_bridge_help():
    out = subprocess.run(
        [sys.executable, "-m", "bridge", "--help"], capture_output=True, text=True, check=True
    )
    assert "install-triggers" in out.stdout
    assert "Typical setup of one site" in out.stdout


def test_table_option_is_enough_before_tables_is_configured(env, fresh_topology):
    no_tables = {k: v for k, v in env.items() if k != "BRIDGE_TABLES"}
    no_tables["BRIDGE_AMQP_URL"] = amqp_url_for("PARIS")  # status probes the broker
    assert bridge(no_tables, "init").exit_code == 0
    out = bridge(no_tables, "install-triggers", "--table", "orders")
    assert out.exit_code == 0, out.output
    assert triggers() == CAPTURE_TRIGGERS
    assert "capturing orders" in out.output
    # how to have it synced: bridge run applies other sites' changes only to 'tables'
    assert "orders is not in 'tables'" in out.output
    assert '[tables] orders = "lww"' in out.output
    out = bridge(no_tables, "install-triggers", "--table", "orders", "--sql")
    assert out.exit_code == 0 and "CREATE TRIGGER bridge_capture_insert" in out.output
    assert "not in 'tables'" not in out.output  # nothing captured by printing
    out = bridge(no_tables, "status")
    assert out.exit_code == 0, out.output
    # already in 'tables': no such note
    out = bridge(env, "install-triggers", "--table", "orders")
    assert out.exit_code == 0 and "not in 'tables'" not in out.output
    out = bridge(no_tables, "uninstall-triggers", "--table", "orders")
    assert out.exit_code == 0, out.output
    assert triggers() == []


def test_without_table_option_or_tables_the_commands_say_what_to_give(env):
    no_tables = {k: v for k, v in env.items() if k != "BRIDGE_TABLES"}
    assert bridge(no_tables, "init").exit_code == 0
    out = bridge(no_tables, "install-triggers")
    assert out.exit_code == 1
    assert "no table given: name one with --table" in out.output
    # bridge run syncs 'tables': it still requires it, with the key named
    out = bridge(no_tables, "run")
    assert out.exit_code == 1
    assert "missing configuration key 'tables'" in out.output
    assert triggers() == []


def outbox_rows() -> list[dict[str, Any]]:
    return [r[0] for r in sql(DB, "SELECT payload FROM bridge_outbox ORDER BY seq")]


def test_an_alter_that_drops_a_captured_column_does_not_break_writes(env):
    """The capture function names the columns it overrides (blob, amount...): dropping or
    renaming one would make every write of the application fail until install-triggers
    runs. The event trigger swaps in the after-ALTER form instead; status tells to
    reinstall."""
    assert bridge(env, "init").exit_code == 0
    out = bridge(env, "install-triggers")
    assert out.exit_code == 0, out.output
    assert "not a superuser" not in out.output
    sql(DB, "ALTER TABLE orders DROP COLUMN blob")
    sql(DB, "ALTER TABLE orders RENAME COLUMN amount TO price")
    sql(DB, "INSERT INTO orders (id, customer, price) VALUES (1, 'x', 1.50)")
    (payload,) = outbox_rows()
    assert payload["row"] == {
        "id": 1,
        "customer": "x",
        "price": 1.5,  # its to_jsonb form: a JSON number (exact: 1.50)
        "note": None,
        "updated_at": None,
    }
    assert payload["json_text"] == []
    assert "columns changed since the trigger was installed" in bridge(env, "status").output

    assert bridge(env, "install-triggers").exit_code == 0
    assert "capture trigger up to date" in bridge(env, "status").output
    sql(DB, "UPDATE orders SET price = 2 WHERE id = 1")
    assert outbox_rows()[-1]["row"]["price"] == "2.0000"  # the exact form again
    # an ALTER that changes no column still swaps the form in: status says so
    sql(DB, "ALTER TABLE orders ADD CONSTRAINT positive CHECK (price >= 0)")
    out = bridge(env, "status").output
    assert "altered since the trigger was installed" in out
    assert "run bridge install-triggers --table orders again" in out
    assert bridge(env, "install-triggers").exit_code == 0
    assert "capture trigger up to date" in bridge(env, "status").output


@pytest.fixture
def app_role(env):
    """A role that is not a superuser and owns the site database and its `orders` table,
    as an application's owner often is."""
    role = f"{DB_PREFIX}app"
    sql("postgres", f'DROP ROLE IF EXISTS "{role}"')
    sql("postgres", f'CREATE ROLE "{role}" LOGIN')
    sql("postgres", f'ALTER DATABASE "{DB}" OWNER TO "{role}"')
    sql(DB, f'ALTER TABLE orders OWNER TO "{role}"')
    yield role
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def as_role(role: str, statement: str) -> None:
    url = pg_url(DB).replace("postgres@", f"{role}@")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def test_without_a_superuser_the_install_says_what_an_alter_then_needs(env, app_role):
    """Measured: without the event trigger, an ALTER that drops a column the capture
    function names makes the application's writes fail until install-triggers runs."""
    env = {**env, "BRIDGE_DATABASE_URL": pg_url(DB).replace("postgres@", f"{app_role}@")}
    assert bridge(env, "init").exit_code == 0
    out = bridge(env, "install-triggers")
    assert out.exit_code == 0, out.output
    assert "not a superuser: installed without the event trigger" in out.output
    assert "capturing orders" in out.output
    as_role(app_role, "INSERT INTO orders (id, customer) VALUES (1, 'before')")
    as_role(app_role, "ALTER TABLE orders DROP COLUMN blob")
    with pytest.raises(psycopg.errors.UndefinedColumn, match="blob"):
        as_role(app_role, "INSERT INTO orders (id, customer) VALUES (2, 'after')")
    assert bridge(env, "install-triggers").exit_code == 0
    as_role(app_role, "INSERT INTO orders (id, customer) VALUES (2, 'after')")
    assert [p["key"] for p in outbox_rows()] == [{"id": 1}, {"id": 2}]


def test_the_tables_owner_alters_it_and_the_capture_a_superuser_installed_goes_on(env, app_role):
    """The event trigger replaces a capture function its owner (the superuser who
    installed) owns, for an ALTER run by the table's owner: it runs as its definer."""
    assert bridge(env, "init").exit_code == 0
    assert bridge(env, "install-triggers").exit_code == 0
    # the application's writes are captured in its own name: it writes the outbox
    sql(DB, f'GRANT SELECT, INSERT ON bridge_outbox, bridge_row_version TO "{app_role}"')
    as_role(app_role, "ALTER TABLE orders DROP COLUMN blob")
    as_role(app_role, "INSERT INTO orders (id, customer) VALUES (3, 'goes on')")
    assert [p["row"]["customer"] for p in outbox_rows()] == ["goes on"]
