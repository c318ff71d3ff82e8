"""Row filters (`install-triggers --where`): the condition checked against its grammar and
the table's columns, rendered for each dialect with the template's row alias, and carried
into the capture templates of PostgreSQL and MariaDB (without one, the goldens of
test_templates.py and test_mariadb_dialect.py stay as they are). What the triggers do with
it on real servers: tests/integration/test_row_filter.py."""

from __future__ import annotations

import io
from typing import Any

import pytest

from bridge import install, rowfilter
from bridge.dialects.base import Dialect, TableInfo
from bridge.dialects.mariadb import MariaDBDialect
from bridge.dialects.mssql import MSSQLDialect
from bridge.dialects.oracle import OracleDialect
from bridge.dialects.postgresql import PostgresDialect
from bridge.errors import ConfigError

pytestmark = pytest.mark.unit

PG = PostgresDialect()
MARIA = MariaDBDialect()
COLUMNS = ("id", "status", "amount", "note", "Region")

ORDERS_PG = """
CREATE TABLE orders (
    id     bigint PRIMARY KEY,
    status text NOT NULL,
    amount numeric(12, 2),
    note   text,
    "Region" text
)
"""
ORDERS_MARIA = """
CREATE TABLE orders (
    id     BIGINT PRIMARY KEY,
    status VARCHAR(20) NOT NULL,
    amount DECIMAL(12, 2),
    note   TEXT,
    `Region` TEXT
)
"""


def info(dialect: Dialect) -> TableInfo:
    from bridge import offline

    ddl = ORDERS_PG if dialect.name == "postgresql" else ORDERS_MARIA
    return offline.table_from_ddl(dialect, ddl, "orders")


def rendered(text: str, dialect: str, alias: str) -> str:
    condition = rowfilter.parse(text, COLUMNS)
    return rowfilter.RowFilter(text, condition, dialect).on(alias)


# --- rendered per dialect ----------------------------------------------------------------

CASES = [
    (
        "status <> 'draft'",
        {
            "postgres": "n.\"status\" <> 'draft'",
            "mysql": "NEW.`status` <> 'draft'",
            "tsql": "i.[status] <> 'draft'",
            "oracle": ":NEW.\"status\" <> 'draft'",
        },
    ),
    (
        "status IN ('open', 'paid') AND amount >= 10",
        {
            "postgres": "n.\"status\" IN ('open', 'paid') AND n.\"amount\" >= 10",
            "mysql": "NEW.`status` IN ('open', 'paid') AND NEW.`amount` >= 10",
            "tsql": "i.[status] IN ('open', 'paid') AND i.[amount] >= 10",
            "oracle": ":NEW.\"status\" IN ('open', 'paid') AND :NEW.\"amount\" >= 10",
        },
    ),
    (
        "note IS NULL OR NOT (amount < 0)",
        {
            "postgres": 'n."note" IS NULL OR NOT (n."amount" < 0)',
            "mysql": "NEW.`note` IS NULL OR NOT (NEW.`amount` < 0)",
            "tsql": "i.[note] IS NULL OR NOT (i.[amount] < 0)",
            "oracle": ':NEW."note" IS NULL OR NOT (:NEW."amount" < 0)',
        },
    ),
    (
        "note NOT LIKE 'test%' AND note IS NOT NULL",
        {
            "postgres": 'n."note" NOT LIKE \'test%\' AND NOT n."note" IS NULL',
            "mysql": "NEW.`note` NOT LIKE 'test%' AND NOT NEW.`note` IS NULL",
            "tsql": "i.[note] NOT LIKE 'test%' AND NOT i.[note] IS NULL",
            "oracle": ':NEW."note" NOT LIKE \'test%\' AND NOT :NEW."note" IS NULL',
        },
    ),
    (
        "note <> 'it''s'",
        {
            "postgres": "n.\"note\" <> 'it''s'",
            "mysql": "NEW.`note` <> 'it''s'",
            "tsql": "i.[note] <> 'it''s'",
            "oracle": ":NEW.\"note\" <> 'it''s'",
        },
    ),
    (
        # an unquoted name matches the one column of that name whatever its case
        "region = 'EU' OR COALESCE(UPPER(note), '') BETWEEN 'A' AND 'M'",
        {
            "postgres": (
                "n.\"Region\" = 'EU' OR COALESCE(UPPER(n.\"note\"), '') BETWEEN 'A' AND 'M'"
            ),
            "mysql": "NEW.`Region` = 'EU' OR COALESCE(UPPER(NEW.`note`), '') BETWEEN 'A' AND 'M'",
            "tsql": "i.[Region] = 'EU' OR COALESCE(UPPER(i.[note]), '') BETWEEN 'A' AND 'M'",
            "oracle": (
                ":NEW.\"Region\" = 'EU' OR COALESCE(UPPER(:NEW.\"note\"), '') BETWEEN 'A' AND 'M'"
            ),
        },
    ),
]
ALIASES = {"postgres": "n", "mysql": "NEW", "tsql": "i", "oracle": ":NEW"}


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rendered_per_dialect(text: str, expected: dict[str, str]) -> None:
    for dialect, alias in ALIASES.items():
        assert rendered(text, dialect, alias) == expected[dialect], dialect


def test_the_alias_replaces_only_the_placeholder() -> None:
    # a string holding the placeholder's name is left alone (another name is chosen)
    text = "note = 'bridge_row0.x' AND status <> 'bridge_row1'"
    assert rendered(text, "postgres", "o") == (
        "o.\"note\" = 'bridge_row0.x' AND o.\"status\" <> 'bridge_row1'"
    )


def test_a_literal_for_bridge_meta_per_dialect() -> None:
    text = "note <> 'a\\b''c'"
    condition = rowfilter.parse(text, COLUMNS)
    assert rowfilter.RowFilter(text, condition, "postgres").literal == "'note <> ''a\\b''''c'''"
    # MariaDB reads a backslash in a string as an escape
    assert rowfilter.RowFilter(text, condition, "mysql").literal == "'note <> ''a\\\\b''''c'''"


def test_comments_are_not_rendered() -> None:
    assert rendered("status <> 'x' /* */ -- \n", "postgres", "n") == "n.\"status\" <> 'x'"


# --- refusals ----------------------------------------------------------------------------

REFUSED = [
    ("", "empty"),
    ("   ", "empty"),
    ("status <> 'draft';", "remove the ;"),
    ("status <> 'draft'; DROP TABLE orders", "remove the ;"),
    ("id IN (SELECT id FROM other)", "no subqueries"),
    ("amount > (SELECT 1)", "no subqueries"),
    ("EXISTS (SELECT 1 FROM other)", "no subqueries"),
    ("COUNT(id) > 1", "no aggregates"),
    ("amount > SUM(amount)", "no aggregates"),
    ("status = ?", "no parameters"),
    ("status = :status", "no parameters"),
    ("status = @status", "no parameters"),
    ("status = $1", "no parameters"),
    ("status = @@sql_mode", "no parameters"),
    ("state <> 'draft'", "unknown column 'state' (the table's columns: id, status, amount"),
    ('status <> "draft"', "unknown column 'draft'"),
    ("\"STATUS\" <> 'draft'", "unknown column 'STATUS'"),
    ("orders.status <> 'draft'", "without a table or schema"),
    ("status", "is a value, not a condition"),
    ("'draft'", "is a value, not a condition"),
    ("amount + 1", "is a value, not a condition"),
    ("status <> 'draft' AND amount", "is a value, not a condition"),
    ("my_function(status) = 1", "is not allowed in a row filter; allowed:"),
    ("CURRENT_TIMESTAMP > amount", "is not allowed"),
    ("status ILIKE 'd%'", "is not allowed"),
    ("note LIKE 'a!%' ESCAPE '!'", "is not allowed"),
    ("amount / 2 > 1", "is not allowed"),
    ("status = 'a' AND", "not a condition bridge can read"),
    ("note <> '$bridge$'", "would end the trigger's body"),
    ("note <> '$$'", "would end the trigger's body"),
]


@pytest.mark.parametrize(("text", "why"), REFUSED, ids=[r[0] or "blank" for r in REFUSED])
def test_refused(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match="^row filter ") as caught:
        rowfilter.for_table(PG, info(PG), text)
    assert why in str(caught.value)
    assert 'see "Row filters" in docs/dba.md' in str(caught.value)


@pytest.mark.parametrize("dialect", [MSSQLDialect(), OracleDialect()], ids=["mssql", "oracle"])
def test_a_dialect_whose_capture_takes_no_filter_refuses_one(dialect: Dialect) -> None:
    assert not dialect.row_filters
    with pytest.raises(ConfigError, match="does not take a row filter yet: install the"):
        rowfilter.for_table(dialect, info(PG), "status <> 'draft'")


# --- which filter an install uses --------------------------------------------------------


def test_where_replaces_and_blank_removes_the_installed_filter() -> None:
    orders = info(PG)
    kept = install.row_filter(PG, orders, None, "status <> 'draft'")
    assert kept is not None and kept.text == "status <> 'draft'"
    given = install.row_filter(PG, orders, "amount > 0", "status <> 'draft'")
    assert given is not None and given.text == "amount > 0"
    assert install.row_filter(PG, orders, "", "status <> 'draft'") is None
    assert install.row_filter(PG, orders, "  ", None) is None
    assert install.row_filter(PG, orders, None, None) is None


def test_an_installed_filter_that_no_longer_fits_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match="the row filter installed for orders no longer fits"):
        install.row_filter(PG, info(PG), None, "state <> 'draft'")


def test_where_names_one_table() -> None:
    ddl = ORDERS_PG + ";\nCREATE TABLE items (id bigint PRIMARY KEY, status text)"
    with pytest.raises(ConfigError, match="--where filters the rows of one table, and 2"):
        install.offline_triggers(
            PG, ddl, ["orders", "items"], install.PrintSink(PG, io.StringIO()), where="id > 0"
        )


# --- in the capture templates ------------------------------------------------------------


def script(dialect: Dialect, where: str | None) -> str:
    out = io.StringIO()
    ddl = ORDERS_PG if dialect.name == "postgresql" else ORDERS_MARIA
    install.offline_triggers(dialect, ddl, ["orders"], install.PrintSink(dialect, out), where=where)
    return out.getvalue()


def test_postgresql_capture_selects_the_rows_that_pass() -> None:
    text = script(PG, "status <> 'draft'")
    # insert and update of new rows that pass, delete of old rows that pass, the rows that
    # leave; in the capture and in its after-ALTER form
    assert (
        text.count(
            """FROM bridge_new AS n\n                         WHERE (n."status" <> 'draft'))"""
        )
        == 4
    )
    assert (
        text.count(
            """FROM bridge_old AS o\n                         WHERE (o."status" <> 'draft'))"""
        )
        == 2
    )
    leaving = """FROM bridge_old AS o
                         WHERE (o."status" <> 'draft')
                           AND EXISTS (SELECT 1 FROM bridge_new AS n
                                        WHERE n."id" = o."id"
                                          AND (n."status" <> 'draft') IS NOT TRUE))"""
    assert text.count(leaving) == 2
    moved = """WHERE n."id" = o."id")
                           AND (o."status" <> 'draft'))"""
    assert text.count(moved) == 2
    assert "names no column but the key's and the row filter's" in text
    assert "'row_filter', 'status <> ''draft''')" in text


def test_mariadb_capture_tests_the_rows_that_pass() -> None:
    text = script(MARIA, "status <> 'draft'")
    assert text.count("IF (NEW.`status` <> 'draft') THEN") == 2  # insert, update
    assert text.count("IF (OLD.`status` <> 'draft') THEN") == 2  # delete, old key
    assert "ELSEIF (OLD.`id` <=> NEW.`id`) AND (OLD.`status` <> 'draft') THEN" in text
    assert "'row_filter', 'status <> ''draft''')" in text


@pytest.mark.parametrize("dialect", [PG, MARIA], ids=["postgresql", "mariadb"])
def test_without_a_filter_the_script_is_the_same(dialect: Dialect) -> None:
    assert script(dialect, None) == script(dialect, "")
    assert "row_filter" not in script(dialect, None)
    assert "<> 'draft'" not in script(dialect, None)


# --- the command line ------------------------------------------------------------------


def test_the_command_renders_the_filter_offline(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from bridge.cli import main

    ddl = tmp_path / "orders.sql"
    ddl.write_text(ORDERS_MARIA)
    args = ["install-triggers", "--sql", "--ddl", str(ddl), "-t", "orders"]
    done = CliRunner().invoke(main, [*args, "--dialect", "mariadb", "--where", "status <> 'draft'"])
    assert done.exit_code == 0, done.output
    assert "IF (NEW.`status` <> 'draft') THEN" in done.output
    ddl.write_text("CREATE TABLE orders (id BIGINT PRIMARY KEY, status NVARCHAR(20))")
    refused = CliRunner().invoke(main, [*args, "--dialect", "mssql", "--where", "status = 'x'"])
    assert refused.exit_code != 0
    assert "ConfigError: SQL Server's capture does not take a row filter yet" in refused.output
    bad = CliRunner().invoke(main, [*args, "--dialect", "postgresql", "--where", "state = 'x'"])
    assert "unknown column 'state' (the table's columns: id, status)" in bad.output
