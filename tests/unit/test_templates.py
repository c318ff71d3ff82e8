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
    """A table with a column of each way a value is captured: to_jsonb as is (id, Customer),
    overridden (Amount, updated_at, blob, doc, tags), a json column set aside before
    to_jsonb (legacy), an identity column written only on insert (seq)."""
    cols = [
        PG.column(1, "id", "bigint", "int8", "N"),
        PG.column(2, "Customer", "text", "text", "S"),
        PG.column(3, "Amount", "numeric(12,2)", "numeric", "N"),
        PG.column(4, "updated_at", "timestamp with time zone", "timestamptz", "D"),
        PG.column(5, "blob", "bytea", "bytea", "U"),
        PG.column(7, "doc", "jsonb", "jsonb", "U"),
        PG.column(8, "legacy", "json", "json", "U"),
        PG.column(9, "tags", "text[]", "_text", "A"),
        PG.column(10, "seq", "bigint", "int8", "N", identity_always=True),
    ]
    return TableInfo(
        table=PG.table_ref(table),
        columns=tuple(cols),
        pk=(cols[0],),
        non_pk=tuple(cols[1:]),
        identity_always=True,
        generated=("total",),
    )


def apply_statements(info: TableInfo) -> list[str]:
    """The apply statements of a table, with the upsert of every column as text and of an
    event that lacks `doc` and carries `tags` in its JSON form."""
    ctx = {"table": info.table, "info": info}
    every = [(c, "text") for c in info.columns]
    some = [(c, "json" if c.name == "tags" else "text") for c in info.columns if c.name != "doc"]
    return [
        PG.render("apply_read", **ctx),
        PG.render("apply_upsert", present=every, **ctx),
        PG.render("apply_upsert", present=some, **ctx),
        PG.render("apply_delete", **ctx),
        PG.render("apply_compare", column=info.columns[3], theirs="text", mine="text"),
        PG.render("verify_rows", **ctx),
    ]


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


def test_capture_install_without_event_trigger_golden():
    """What a user who is not a superuser installs: the same, less the event trigger."""
    full = install.trigger_statements(PG, orders_info())
    without = install.trigger_statements(PG, orders_info(), event_trigger=False)
    assert [s for s in full if s not in without] == [
        s for s in full if "bridge_capture_after_alter" in s
    ]
    assert len(full) - len(without) == 3


def test_apply_statements_golden():
    check_golden("postgresql_apply.sql", script(apply_statements(orders_info())))


def test_apply_and_verify_begin_golden():
    refs = ["'orders'", '\'"sales"."orders"\'']
    text = script([PG.render("apply_begin", tables=refs), PG.render("verify_begin")])
    check_golden("postgresql_begin.sql", text)


def test_init_statements_parse():
    for stmt in install.init_statements(PG, "PARIS"):
        sqlglot.parse_one(stmt, read="postgres")


def test_apply_and_uninstall_statements_parse():
    for statement in apply_statements(orders_info()):
        # psycopg placeholders are not SQL: swap them for literals to parse; sqlglot does
        # not know OVERRIDING SYSTEM VALUE (the integration tests run it on PostgreSQL)
        text = re.sub(r"%\((\w+)\)s", "NULL", statement).replace("OVERRIDING SYSTEM VALUE", "")
        sqlglot.parse_one(text, read="postgres")
    for stmt in install.uninstall_statements(PG, "orders"):
        sqlglot.parse_one(stmt, read="postgres")


def test_every_identifier_is_quoted():
    text = script(install.trigger_statements(PG, orders_info("sales.orders")))
    assert 'ON "sales"."orders"' in text
    assert 'FUNCTION "sales"."bridge_capture_orders"()' in text
    assert 'FUNCTION "sales"."bridge_altered_orders"()' in text
    assert 'n."Amount"' in text
    assert "'Amount'" in text  # the JSON key keeps the exact name
    assert " orders " not in text.replace("'orders", "")
    upsert = PG.render(
        "apply_upsert",
        table=info_of_sales().table,
        info=info_of_sales(),
        present=[(c, "text") for c in info_of_sales().columns],
    )
    assert 'INSERT INTO "sales"."orders" ("id", "Customer"' in upsert


def info_of_sales() -> TableInfo:
    return orders_info("sales.orders")


def test_wide_tables_are_built_in_chunks():
    cols = tuple(PG.column(i, f"c{i}", "numeric", "numeric", "N") for i in range(120))
    info = TableInfo(table=PG.table_ref("wide"), columns=cols, pk=cols[:1], non_pk=cols[1:])
    text = script(install.trigger_statements(PG, info))
    # jsonb_build_object accepts at most 100 arguments: 40 columns (80 arguments) per call
    assert text.count(") || jsonb_build_object(") >= 2
    for call in text.split("jsonb_build_object(")[1:]:
        assert call.split(")")[0].count(",") < 100


def test_only_plain_json_columns_are_set_aside_before_to_jsonb():
    """json_populate_record(n.*, '{"doc": null}') keeps to_jsonb from parsing a json column
    (it refuses \\u0000); on a domain over json, NULL would run the domain's checks (a NOT
    NULL domain would fail every write), so a domain's column is left to to_jsonb."""
    cols = (
        PG.column(1, "id", "bigint", "int8", "N"),
        PG.column(2, "doc", "json", "json", "U"),
        PG.column(3, "strict", "jdoc", "json", "U"),
    )
    info = TableInfo(table=PG.table_ref("docs"), columns=cols, pk=cols[:1], non_pk=cols[1:])
    text = install.trigger_statements(PG, info)[0]
    assert "json_populate_record(n.*, '{\"doc\": null}')" in text
    assert "'json_text', '[\"doc\", \"strict\"]'::jsonb" in text
