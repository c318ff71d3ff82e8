"""The generated SQL, checked without a database: golden files reviewed by eye, parsing,
and identifier quoting. Regenerate the golden files with BRIDGE_UPDATE_GOLDEN=1."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import sqlglot

from bridge import install
from bridge.dialects.base import TableInfo
from bridge.dialects.postgresql import PostgresDialect

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"
PG = PostgresDialect()


def orders_info(table: str = "orders") -> TableInfo:
    cols = [
        PG.column(0, "id", "bigint", "int8"),
        PG.column(1, "Customer", "text", "text"),
        PG.column(2, "amount", "numeric(12,2)", "numeric"),
        PG.column(3, "updated_at", "timestamp with time zone", "timestamptz"),
        PG.column(4, "blob", "bytea", "bytea"),
    ]
    return TableInfo(
        table=PG.table_ref(table), columns=tuple(cols), pk=(cols[0],), non_pk=tuple(cols[1:])
    )


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("BRIDGE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with BRIDGE_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()


def script(statements: list[str]) -> str:
    return "\n\n".join(s if s.endswith(";") else s + ";" for s in statements) + "\n"


def test_capture_install_golden():
    check_golden(
        "postgresql_capture_install.sql", script(install.trigger_statements(PG, orders_info()))
    )


def test_apply_statements_golden():
    info = orders_info()
    ctx = {"table": info.table, "info": info}
    text = script([PG.render(n, **ctx) for n in ("apply_read", "apply_upsert", "apply_delete")])
    check_golden("postgresql_apply.sql", text)


def test_init_statements_parse():
    for stmt in install.init_statements(PG, "PARIS"):
        sqlglot.parse_one(stmt, read="postgres")


def test_apply_and_uninstall_statements_parse():
    info = orders_info()
    ctx = {"table": info.table, "info": info}
    for name in ("apply_read", "apply_upsert", "apply_delete"):
        # psycopg placeholders are not SQL: swap them for literals to parse
        stmt = re.sub(r"%\((\w+)\)s", "NULL", PG.render(name, **ctx))
        sqlglot.parse_one(stmt, read="postgres")
    for stmt in install.uninstall_statements(PG, "orders"):
        sqlglot.parse_one(stmt, read="postgres")


def test_every_identifier_is_quoted():
    text = script(install.trigger_statements(PG, orders_info("sales.orders")))
    assert 'ON "sales"."orders"' in text
    assert 'FUNCTION "sales"."bridge_capture_orders"()' in text
    assert 'n."Customer"' in text
    assert "'Customer'" in text  # the JSON key keeps the exact name
    assert " orders " not in text.replace("'orders", "")


def test_wide_tables_are_built_in_chunks():
    cols = tuple(PG.column(i, f"c{i}", "integer", "int4") for i in range(120))
    info = TableInfo(table=PG.table_ref("wide"), columns=cols, pk=cols[:1], non_pk=cols[1:])
    text = script(install.trigger_statements(PG, info))
    # jsonb_build_object accepts at most 100 arguments: 40 columns (80 arguments) per call
    assert text.count(") || jsonb_build_object(") >= 2
    for call in text.split("jsonb_build_object(")[1:]:
        assert call.split(")")[0].count(",") < 100


def test_cleanup_dry_run_counts_under_the_same_conditions_as_the_delete():
    def wheres(dry_run: bool) -> list[str]:
        found = []
        for stmt in PG.statements("cleanup", dry_run=dry_run):
            assert ("DELETE" in stmt) is not dry_run
            parsed = sqlglot.parse_one(re.sub(r"%\((\w+)\)s", "1", stmt), read="postgres")
            found.append(parsed.find(sqlglot.exp.Where).sql(dialect="postgres"))
        return found

    deleting = wheres(dry_run=False)
    assert len(deleting) == 3 and all("CLOCK_TIMESTAMP()" in w for w in deleting)
    assert wheres(dry_run=True) == deleting


def test_uninit_statements_parse():
    functions = ['"public"."bridge_capture_gone"']
    statements = PG.statements("uninit", functions=functions)
    assert statements[0] == 'DROP FUNCTION IF EXISTS "public"."bridge_capture_gone"();'
    assert statements[-1].startswith("DROP TABLE IF EXISTS bridge_outbox")
    for name in ("capture_installed", "capture_functions", "outbox_unpublished"):
        statements.append(PG.render(name))
    statements += PG.statements("uninit_guard", outbox=True)
    for stmt in statements:
        sqlglot.parse_one(stmt, read="postgres")
    # uninit drops bridge_meta right after: no entry to forget
    forgetting = install.uninstall_statements(PG, "orders")
    assert forgetting[-1].startswith("DELETE FROM bridge_meta")
    assert install.uninstall_statements(PG, "orders", forget=False) == forgetting[:-1]
