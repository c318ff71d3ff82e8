"""The SQL Server dialect, checked without a server (none can run on these machines):
golden files reviewed by eye, every statement of every template parsed by sqlglot (T-SQL),
identifier quoting, and the Python side (types, key text, errors, binding, printing).

sqlglot reads every statement bridge sends to SQL Server but two kinds, checked here by
other means: the capture trigger (a procedural body: its BEGIN/END balanced, each INSERT ...
SELECT inside it parsed on its own) and `ALTER TABLE ... ADD CONSTRAINT ... DEFAULT ... FOR`
and `SET IDENTITY_INSERT`, which sqlglot passes through as opaque commands (checked by
pattern). The real check is tests/integration/test_mssql_live.py, where a server exists.

pyodbc is not installed here (it needs unixODBC and Microsoft's driver): the error tests
build exceptions of a stand-in module shaped like pyodbc's (the DB-API classes, args =
(SQLSTATE, message ending with "(native error) (SQLExecDirectW)")), or of pyodbc itself
where it is installed.

Regenerate the golden files with BRIDGE_UPDATE_GOLDEN=1 (tests/unit/test_templates.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import sys
import types
from decimal import Decimal
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from bridge import apply, install
from bridge.dialects import by_name, dbapi
from bridge.dialects.base import TableInfo
from bridge.dialects.mssql import (
    MSSQLDialect,
    classify,
    connection_string,
    error_numbers,
    normal_type,
)
from bridge.errors import DatabaseError, IdentifierError, SchemaError
from bridge.offline import table_from_ddl
from tests import sqlcheck
from tests.unit.test_templates import check_golden

pytestmark = pytest.mark.unit

MS = MSSQLDialect()

# The golden files' table: a composite key (region, id) and a column of every common type;
# `Customer` needs quoting (mixed case), `doc` is a JSON document (an ISJSON check, which
# CREATE TABLE text alone does not make a json column: see kind_of's test for that).
ORDERS_DDL = """\
CREATE TABLE orders (
    region     NVARCHAR(8)      NOT NULL,
    id         BIGINT           NOT NULL,
    lines      INT              NOT NULL,
    Customer   NVARCHAR(200)    NOT NULL,
    notes      NVARCHAR(MAX)    NULL,
    code       VARCHAR(20)      NULL,
    amount     DECIMAL(12, 2)   NOT NULL,
    paid       BIT              NOT NULL,
    placed_at  DATETIME2(6)     NOT NULL,
    updated_at DATETIMEOFFSET   NULL,
    ship_date  DATE             NULL,
    ship_time  TIME             NULL,
    ref        UNIQUEIDENTIFIER NULL,
    blob       VARBINARY(MAX)   NULL,
    ratio      FLOAT            NULL,
    doc        NVARCHAR(MAX)    NULL CONSTRAINT orders_doc_is_json CHECK (ISJSON(doc) = 1),
    CONSTRAINT orders_pk PRIMARY KEY (region, id)
);
"""


def orders_info(table: str = "orders") -> TableInfo:
    return table_from_ddl(
        MS, ORDERS_DDL.replace("CREATE TABLE orders", f"CREATE TABLE {table}"), table
    )


def tags_info() -> TableInfo:
    """Nothing but its key: an upsert has nothing to update."""
    return table_from_ddl(MS, "CREATE TABLE tags (tag NVARCHAR(50) NOT NULL PRIMARY KEY)", "tags")


def events_info() -> TableInfo:
    """What introspection makes of an IDENTITY key, a JSON document (ISJSON check), a
    money, a real, a datetime and the deprecated TEXT/NTEXT/IMAGE types (not from DDL:
    bridge/offline.py sees neither IDENTITY nor checks, and sqlglot reads NTEXT as text)."""
    cols = (
        MS.column(1, "id", "int", "int", identity_always=True),
        MS.column(2, "doc", "nvarchar(max)", "nvarchar", "json"),
        MS.column(3, "price", "money", "money"),
        MS.column(4, "weight", "real", "real"),
        MS.column(5, "seen_at", "datetime", "datetime"),
        MS.column(6, "memo", "ntext", "ntext"),
        MS.column(7, "old_memo", "text", "text"),
        MS.column(8, "picture", "image", "image"),
        MS.column(9, "spot", "geography", "geography"),
    )
    return TableInfo(
        table=MS.table_ref("events"),
        columns=cols,
        pk=cols[:1],
        non_pk=cols[1:],
        identity_always=True,
    )


def infos() -> list[TableInfo]:
    return [orders_info(), orders_info("sales.orders"), tags_info(), events_info()]


def printed(statements: list[str]) -> str:
    return "\n\n".join(MS.printed(s) for s in statements) + "\n"


def apply_statements(info: TableInfo) -> list[str]:
    """The apply statements of a table (their upsert and insert carry every column as
    text), the upsert and insert of an event that lacks `notes`, the policy column's
    comparison and verify's read."""
    ctx = {"table": info.table, "info": info}
    some = [(c, "text") for c in info.columns if c.name != "notes"]
    placed_at = info.column("placed_at")
    return [
        *dataclasses.astuple(apply.statements(MS, info)),
        MS.render("apply_upsert", present=some, new_row=False, **ctx),
        MS.render("apply_upsert", present=some, new_row=True, **ctx),
        MS.render("apply_compare", column=placed_at, theirs="text", mine="text"),
        MS.render("verify_rows", **ctx),
    ]


def rendered() -> list[sqlcheck.Rendered]:
    return sqlcheck.render_all(MS, infos())


# --- golden files --------------------------------------------------------------------------


def test_capture_install_golden() -> None:
    statements = install.trigger_statements(MS, orders_info(), bridge_schema="dbo")
    check_golden("mssql_capture_install.sql", printed(statements))


def test_init_golden() -> None:
    check_golden("mssql_init.sql", printed(install.init_statements(MS, "PARIS")))


def test_apply_statements_golden() -> None:
    check_golden("mssql_apply.sql", printed(apply_statements(orders_info())))


def test_verify_chunk_golden() -> None:
    check_golden("mssql_verify.sql", printed(sqlcheck.verify_statements(MS, orders_info())))


def test_the_golden_table_is_what_the_brief_asks_for() -> None:
    info = orders_info()
    assert [c.name for c in info.pk] == ["region", "id"]
    assert {c.kind for c in info.columns} == {
        "text", "int", "decimal", "bool", "timestamp", "timestamptz", "date", "time", "uuid",
        "bytes", "float", "json",
    }  # fmt: skip
    assert info.column("doc").kind == "json"  # its ISJSON check (bridge/offline.py)
    assert info.column("Customer") is not None and info.column("Customer").ref == "[Customer]"


# --- every template, every statement -------------------------------------------------------


def test_every_mariadb_template_has_a_sql_server_twin() -> None:
    """Same names (the core renders templates by name), macros files included."""
    root = sqlcheck.sql.templates_dir()
    names = {p.name for p in (root / "mssql").glob("*.sql.j2")}
    assert names >= {p.name for p in (root / "mariadb").glob("*.sql.j2")}


def test_every_template_is_rendered_for_every_shape() -> None:
    done = rendered()
    assert {r.template for r in done} == set(sqlcheck.template_names(MS))
    per_table = {r.template for r in done if r.table}
    for template in per_table:
        assert {r.table for r in done if r.template == template} == {i.table.name for i in infos()}
    # only the templates that are comments alone render to nothing (MariaDB's too; and
    # bootstrap_begin, as long as bootstrap refuses SQL Server)
    empty = {r.template for r in done if not r.statements}
    assert empty == {"apply_constraints", "verify_begin", "bootstrap_begin"}


def placeholders_as_literals(statement: str) -> str:
    return re.sub(r"%\((\w+)\)s", "NULL", statement)


def is_trigger(statement: str) -> bool:
    return bool(re.search(r"^CREATE OR ALTER TRIGGER ", statement, re.MULTILINE))


# Valid T-SQL that sqlglot passes through as an opaque command; each checked by pattern
SQLGLOT_GAPS = (
    re.compile(
        r"^ALTER TABLE bridge_outbox ADD CONSTRAINT bridge_outbox_origin "
        r"DEFAULT N'[^']*' FOR origin$"
    ),
    re.compile(r"^SET IDENTITY_INSERT (\[\w+\]\.)?\[\w+\] (ON|OFF)$"),
)


def test_every_statement_parses() -> None:
    """Every statement of every template but the trigger is read by sqlglot as T-SQL,
    DROPs and multi-statement batches included, and not passed through as an opaque
    command, but the SQLGLOT_GAPS, each of which matches its pattern exactly."""
    opaque, triggers, gaps = [], 0, 0
    for r in rendered():
        for stmt in r.statements:
            if is_trigger(stmt):
                triggers += 1
                continue
            for parsed in sqlglot.parse(placeholders_as_literals(stmt), read="tsql"):
                if not isinstance(parsed, exp.Command):
                    continue
                text = " ".join(parsed.sql(dialect="tsql").split())
                if any(g.match(text) for g in SQLGLOT_GAPS):
                    gaps += 1
                else:
                    opaque.append(f"{r.label}: {text[:100]}")
    assert opaque == []
    assert triggers == len(infos())
    # the origin's default (init), IDENTITY_INSERT ON (the events table's insert; sqlglot
    # reads `SET IDENTITY_INSERT ... OFF` as a SET of a variable named IDENTITY_INSERT)
    assert gaps == 2


def batches(body: str) -> list[str]:
    """The statements of a procedural body, split at `;` outside strings, brackets,
    parentheses and comments."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(body):
        c = body[i]
        if body.startswith("--", i):
            i = body.find("\n", i) if "\n" in body[i:] else len(body)
            continue
        if c == "'":
            i = body.index("'", i + 1) + 1
            while body.startswith("'", i):  # '' inside a string
                i = body.index("'", i + 1) + 1
            continue
        if c == "[":
            i = body.index("]", i) + 1
            continue
        depth += c == "("
        depth -= c == ")"
        if c == ";" and depth == 0:
            out.append(body[start:i])
            start = i + 1
        i += 1
    out.append(body[start:])
    return [re.sub(r"--[^\n]*", "", s).strip() for s in out if re.sub(r"--[^\n]*", "", s).strip()]


def words(text: str) -> list[str]:
    """The upper-cased words of T-SQL text outside strings, [identifiers] and comments."""
    text = re.sub(r"--[^\n]*", " ", text)
    text = re.sub(r"N?'(?:[^']|'')*'", " ", text)
    text = re.sub(r"\[(?:[^\]]|\]\])*\]", " ", text)
    return re.findall(r"[A-Za-z_@][A-Za-z0-9_@$]*", text.upper())


@pytest.mark.parametrize("info", infos(), ids=lambda i: i.table.name)
def test_the_trigger_body_is_well_formed(info: TableInfo) -> None:
    """sqlglot cannot read a trigger: its body is checked by parts. BEGIN and CASE each
    close with an END; each INSERT ... SELECT into the outbox parses as an INSERT of the
    columns the outbox has; SET NOCOUNT ON comes first; the echo check comes before any
    write."""
    trigger = next(s for s in install.trigger_statements(MS, info) if is_trigger(s))
    w = words(trigger)
    assert w.count("BEGIN") + w.count("CASE") == w.count("END")
    head, _, body = trigger.partition("\nAS\nBEGIN\n")
    assert "AFTER INSERT, UPDATE, DELETE" in head
    assert body.rstrip().endswith("END;")
    statements = batches(body.rstrip()[: -len("END;")])
    assert statements[0] == "SET NOCOUNT ON"
    assert statements[1].startswith("IF SESSION_CONTEXT(N'bridge.applying') IS NOT NULL")
    inserts = [s for s in statements if "INSERT INTO" in s]
    # insert, delete, and an update's deletes of lost keys and its updates
    assert len(inserts) == 4
    for text in inserts:
        text = text[text.index("INSERT INTO") :]
        parsed = sqlglot.parse_one(text, read="tsql")
        assert isinstance(parsed, exp.Insert), text[:200]
        assert parsed.this.this.name == "bridge_outbox"
        assert [c.name for c in parsed.this.expressions] == [
            "event_id", "created_at", "type", "payload", "row_hash", "tx"
        ]  # fmt: skip
    ops = [re.search(r"N'(insert|update|delete)' AS \[op\]", t).group(1) for t in inserts]
    assert ops == ["insert", "delete", "delete", "update"]


def test_result_columns_are_those_the_core_reads() -> None:
    """The final SELECT of each template names the columns bridge/apply.py,
    bridge/dispatcher.py, bridge/install.py and bridge/status.py read, in their order."""
    info = orders_info()
    claim = apply.statements(MS, info).claim

    def last_select(statement: str) -> list[str]:
        parsed = sqlglot.parse(placeholders_as_literals(statement), read="tsql")
        selects = [p for p in parsed if isinstance(p, exp.Select | exp.Union)]
        return list(selects[-1].named_selects)

    assert last_select(claim) == [
        "fresh", "present", "settled", "local_row", "version_ts", "version_origin",
        "pending_ts", "event",
    ]  # fmt: skip
    assert last_select(apply.statements(MS, info).lock) == ["fresh", "present"]
    assert last_select(apply.statements(MS, info).read) == [
        "local_row", "version_ts", "version_origin", "pending_ts"
    ]  # fmt: skip
    assert last_select(MS.render("outbox_fetch")) == [
        "seq", "event_id", "created_at", "origin", "type", "payload", "tx"
    ]  # fmt: skip
    assert last_select(MS.render("outbox_fetch_stragglers")) == [
        "seq", "event_id", "created_at", "origin", "type", "payload", "tx", "again"
    ]  # fmt: skip
    assert last_select(MS.render("outbox_delete")) == [
        "published_at", "deleted", "ts", "origin", "event_id", "event", "unconfirmed"
    ]  # fmt: skip
    begin = MS.render("apply_begin", tables=["'[orders]'", "'[sales].[orders]'"])
    assert last_select(begin)[-2:] == ["waiting", "fingerprints"]
    assert begin.count("OBJECT_ID(N'[sales].[orders]', N'U')") == 1
    assert last_select(MS.render("bridge_schema")) == ["found", "default", "elsewhere"]
    assert last_select(MS.render("capture_installed")) == ["name", "qualified"]
    assert last_select(MS.render("status")) == [
        "unpublished", "awaiting_echo", "oldest_unpublished", "oldest_unechoed", "waiting",
        "applied", "conflicts", "archived", "dispatcher",
    ]  # fmt: skip
    assert last_select(MS.render("status", backlog=True)) == [
        "unpublished", "awaiting_echo", "oldest_unpublished", "oldest_unechoed", "waiting",
    ]  # fmt: skip
    new_row = apply.statements(MS, info).insert
    assert last_select(new_row) == ["written"]
    assert last_select(apply.statements(MS, info).confirm) == ["unchanged"]
    for switches in sqlcheck.cleanup_variants():
        for stmt in MS.statements("cleanup", **switches):
            assert last_select(stmt) == ["what", "n"]


def test_cleanup_dry_run_counts_under_the_same_conditions_as_the_delete() -> None:
    def wheres(dry_run: bool) -> list[str]:
        found = []
        for switches in sqlcheck.cleanup_variants():
            if switches["dry_run"] != dry_run:
                continue
            for stmt in MS.statements("cleanup", **switches):
                assert ("DELETE" in stmt) is not dry_run
                parsed = sqlglot.parse(placeholders_as_literals(stmt), read="tsql")
                found += [w.sql(dialect="tsql") for p in parsed for w in p.find_all(exp.Where)]
        return found

    assert len(wheres(False)) == 5  # archive, inbox, tombstones, conflicts, acks
    assert wheres(True) == wheres(False)


def test_no_literal_percent_nor_question_mark() -> None:
    """A statement that takes parameters goes to the driver with `?` markers (qmark), and
    one without goes as written: a `%` would have to be doubled in the first kind only, and
    a `?` in the text could be taken for a marker. Neither appears, comments included."""
    found = []
    for r in rendered():
        for stmt in r.statements:
            text = re.sub(r"%\((\w+)\)s", "", stmt)
            if "%" in text or "?" in text:
                found.append(r.label)
    assert found == []


def test_statement_separators_stand_alone_on_their_line() -> None:
    """`-- bridge:statement` is a line of its own in every rendered template: a Jinja
    comment that ate the newline around it would glue it to the next statement."""
    info = orders_info()
    texts = [
        MS.render("init", site_literal="'PARIS'", max_payload=100),
        MS.render("capture_install", **install_context(info)),
        MS.render("capture_uninstall", table=info.table, forget=True, trigger="[t]"),
        *(MS.render("cleanup", **switches) for switches in sqlcheck.cleanup_variants()),
        MS.render("uninit_guard", outbox=True),
        *dataclasses.astuple(apply.statements(MS, info)),
    ]
    for text in texts:
        for line in text.splitlines():
            if "bridge:statement" in line:
                assert line == "-- bridge:statement", line


def install_context(info: TableInfo) -> dict[str, Any]:
    return {
        "table": info.table,
        "info": info,
        "version": "0",
        "columns_hash": info.columns_hash,
        "bridge": "[dbo]",
        "clock": MS.capture_clock,
        **MS.capture_context(info.table.name),
    }


def test_the_capture_and_the_applier_hash_the_same_text() -> None:
    """The row hash is computed from nvarchar text in the trigger and in every apply
    statement (the same bytes: UTF-16), from the table's name and the key's text."""
    trigger = install.trigger_statements(MS, orders_info())[0]
    assert (
        "HASHBYTES('SHA2_256', CONCAT(CAST(N'orders' AS nvarchar(max)), NCHAR(10), "
        "CAST(k0.bridge_key AS nvarchar(max))))"
    ) in trigger
    hashed = (
        "HASHBYTES('SHA2_256', CONCAT(CAST(%(table)s AS nvarchar(max)), NCHAR(10), "
        "CAST(%(key)s AS nvarchar(max))))"
    )
    stmts = apply.statements(MS, orders_info())
    for text in (stmts.claim, stmts.read, stmts.upsert, stmts.confirm, stmts.delete):
        assert hashed in text
    assert hashed in MS.render("outbox_delete")


def test_a_key_change_is_found_by_the_key_exactly() -> None:
    """An UPDATE's rows of `deleted` without their key in `inserted` are deletes; a string
    key is compared by its bytes too (case-insensitive collations, trailing spaces)."""
    trigger = install.trigger_statements(MS, orders_info())[0]
    assert (
        "WHERE NOT EXISTS (SELECT 1 FROM inserted AS m WHERE m.[region] = n.[region] AND "
        "CAST(m.[region] AS varbinary(max)) = CAST(n.[region] AS varbinary(max)) AND "
        "m.[id] = n.[id])"
    ) in trigger


def test_legacy_lob_columns_are_read_from_the_table() -> None:
    """TEXT/NTEXT/IMAGE cannot be read from inserted/deleted: an insert or update reads
    them from the table by key, a delete sends NULL."""
    trigger = install.trigger_statements(MS, events_info())[0]
    assert "n.[memo]" not in trigger and "n.[picture]" not in trigger
    assert (
        "(SELECT CONVERT(nvarchar(max), l.[memo]) FROM [events] AS l WHERE l.[id] = n.[id]) "
        "AS [memo]"
    ) in trigger
    assert "NULL AS [memo]" in trigger
    assert "JSON_QUERY(N'[\"doc\"]') AS [json_text]" in trigger


# --- identifiers ---------------------------------------------------------------------------


def test_names_that_need_quoting_are_quoted_everywhere() -> None:
    """A reserved word (`Order`, `Select`) and mixed case (`MixedCase`) never appear bare:
    outside [brackets] and strings, the rendered SQL has no such word in that case."""
    ddl = (
        "CREATE TABLE [Sales].[Order] ([Select] INT NOT NULL PRIMARY KEY, "
        "[MixedCase] NVARCHAR(10) NULL, [from] DATE NULL)"
    )
    info = table_from_ddl(MS, ddl, "Sales.Order")
    texts = [
        *install.trigger_statements(MS, info),
        *install.uninstall_statements(MS, "Sales.Order"),
        *apply_statements_of(info),
    ]
    for text in texts:
        bare = re.sub(r"N?'(?:[^']|'')*'", "", re.sub(r"--[^\n]*", "", text))
        bare = re.sub(r"\[(?:[^\]]|\]\])*\]", "", bare)
        for name in ("Sales", "Order", "Select", "MixedCase", "from"):
            assert not re.search(rf"\b{name}\b", bare), (name, text[:300])
    trigger = install.trigger_statements(MS, info)[0]
    assert "CREATE OR ALTER TRIGGER [Sales].[bridge_capture_Order] ON [Sales].[Order]" in trigger
    assert "n.[Select] AS [Select]" in trigger and "n.[MixedCase] AS [MixedCase]" in trigger
    assert "N'Sales.Order' AS [table]" in trigger  # the JSON keeps the exact name


def apply_statements_of(info: TableInfo) -> list[str]:
    every = [(c, "text") for c in info.columns]
    ctx = {"table": info.table, "info": info, "present": every}
    return [
        *dataclasses.astuple(apply.statements(MS, info)),
        MS.render("apply_upsert", new_row=True, **ctx),
        MS.render("verify_rows", table=info.table, info=info),
    ]


def test_a_name_too_long_is_refused() -> None:
    with pytest.raises(IdentifierError, match="longer than 128"):
        MS.table_ref("t" * 129)
    with pytest.raises(IdentifierError, match="too long"):
        MS.capture_context("t" * 120)  # bridge_capture_ + 120 > 128
    assert MS.capture_context("t" * 113) == {"trigger": f"[bridge_capture_{'t' * 113}]"}
    with pytest.raises(IdentifierError, match="not a valid identifier"):
        MS.table_ref("orders]; DROP TABLE x; --")


def test_the_trigger_is_in_the_table_schema() -> None:
    assert MS.capture_context("sales.orders") == {"trigger": "[sales].[bridge_capture_orders]"}
    drop = install.uninstall_statements(MS, "sales.orders")
    assert drop == [
        "DROP TRIGGER IF EXISTS [sales].[bridge_capture_orders];",
        "DELETE FROM bridge_meta WHERE [key] = N'trigger:sales.orders';",
    ]
    assert install.uninstall_statements(MS, "sales.orders", forget=False) == drop[:1]


# --- types ---------------------------------------------------------------------------------

TYPES = [
    # (declared type, base type, category, kind, bridge's spelling)
    ("TINYINT", "tinyint", "", "int", "tinyint"),
    ("SMALLINT", "smallint", "", "int", "smallint"),
    ("INT", "int", "", "int", "int"),
    ("INTEGER", "integer", "", "int", "int"),
    ("BIGINT", "bigint", "", "int", "bigint"),
    ("BIT", "bit", "", "bool", "bit"),
    ("DECIMAL(12, 2)", "decimal", "", "decimal", "decimal(12,2)"),
    ("NUMERIC(10)", "numeric", "", "decimal", "decimal(10,0)"),
    ("NUMERIC(12, 2)", "numeric", "", "decimal", "decimal(12,2)"),
    ("DECIMAL", "decimal", "", "decimal", "decimal(18,0)"),
    ("MONEY", "money", "", "decimal", "money"),
    ("SMALLMONEY", "smallmoney", "", "decimal", "smallmoney"),
    ("FLOAT", "float", "", "float", "float"),
    ("FLOAT(53)", "float", "", "float", "float"),
    ("FLOAT(24)", "float", "", "float", "real"),
    ("REAL", "real", "", "float", "real"),
    ("DATETIME2(6)", "datetime2", "", "timestamp", "datetime2(6)"),
    ("DATETIME2", "datetime2", "", "timestamp", "datetime2(7)"),
    ("DATETIME", "datetime", "", "timestamp", "datetime"),
    ("SMALLDATETIME", "smalldatetime", "", "timestamp", "smalldatetime"),
    ("DATETIMEOFFSET", "datetimeoffset", "", "timestamptz", "datetimeoffset(7)"),
    ("DATETIMEOFFSET(3)", "datetimeoffset", "", "timestamptz", "datetimeoffset(3)"),
    ("DATE", "date", "", "date", "date"),
    ("TIME", "time", "", "time", "time(7)"),
    ("TIME(0)", "time", "", "time", "time(0)"),
    ("UNIQUEIDENTIFIER", "uniqueidentifier", "", "uuid", "uniqueidentifier"),
    ("VARBINARY(MAX)", "varbinary", "", "bytes", "varbinary(max)"),
    ("BINARY(16)", "binary", "", "bytes", "binary(16)"),
    ("IMAGE", "image", "", "bytes", "image"),
    ("NVARCHAR(MAX)", "nvarchar", "", "text", "nvarchar(max)"),
    ("NVARCHAR(200)", "nvarchar", "", "text", "nvarchar(200)"),
    ("VARCHAR(20)", "varchar", "", "text", "varchar(20)"),
    ("CHAR(3)", "char", "", "text", "char(3)"),
    ("NCHAR", "nchar", "", "text", "nchar(1)"),
    ("TEXT", "text", "", "text", "text"),
    ("NTEXT", "ntext", "", "text", "ntext"),
    ("SYSNAME", "sysname", "", "text", "sysname"),
    ("XML", "xml", "", "text", "xml"),
    ("SQL_VARIANT", "sql_variant", "", "text", "sql_variant"),
    ("GEOGRAPHY", "geography", "", "text", "geography"),
    ("HIERARCHYID", "hierarchyid", "", "text", "hierarchyid"),
    ("NVARCHAR(MAX)", "nvarchar", "json", "json", "nvarchar(max)"),  # an ISJSON check
    ("JSON", "json", "", "json", "json"),  # SQL Server 2025
]


@pytest.mark.parametrize(("declared", "base", "category", "kind", "spelt"), TYPES)
def test_kind_and_spelling_of_every_type(
    declared: str, base: str, category: str, kind: str, spelt: str
) -> None:
    assert MS.kind_of(base, category) == kind
    column = MS.column(3, "c", declared, base, category)
    assert (column.kind, column.sql_type, column.param, column.ref) == (kind, spelt, "p3", "[c]")
    assert normal_type(spelt) == spelt  # the catalog's spelling (introspect_columns) is kept


def test_the_catalog_and_the_ddl_spell_a_table_alike() -> None:
    """Its columns hash (drift detection) does not depend on where it was described."""
    from_ddl = orders_info()
    from_catalog = tuple(
        MS.column(i, c.name, sql, base)
        for i, (c, sql, base) in enumerate(
            zip(
                from_ddl.columns,
                [
                    "nvarchar(8)",
                    "bigint",
                    "int",
                    "nvarchar(200)",
                    "nvarchar(max)",
                    "varchar(20)",
                    "decimal(12,2)",
                    "bit",
                    "datetime2(6)",
                    "datetimeoffset(7)",
                    "date",
                    "time(7)",
                    "uniqueidentifier",
                    "varbinary(max)",
                    "float",
                    "nvarchar(max)",
                ],  # fmt: skip
                [c.base_type for c in from_ddl.columns],
                strict=True,
            ),
            1,
        )
    )
    assert [c.sql_type for c in from_catalog] == [c.sql_type for c in from_ddl.columns]


def test_rowversion_is_never_written() -> None:
    """A rowversion (TIMESTAMP) is SQL Server's, never a date and time."""
    assert MS.kind_of("timestamp") == "bytes"
    assert MS.column(1, "rv", "timestamp", "timestamp").sql_type == "timestamp"


# --- key text ------------------------------------------------------------------------------

FOR_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f",
                    "\n": "\\n", "\r": "\\r", "\t": "\\t"}  # fmt: skip


def for_json(pairs: list[tuple[str, Any]]) -> str:
    """FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES of one row, as SQL Server
    documents it ("How FOR JSON escapes special characters and control characters"): no
    spaces, `"` `\\` `/` and \\b \\f \\n \\r \\t escaped with a backslash, the other control
    characters as \\u00xx, everything else as it is; numbers as numbers, bits as true/false."""

    def value(v: Any) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        out = []
        for ch in str(v):
            if ch in FOR_JSON_ESCAPES:
                out.append(FOR_JSON_ESCAPES[ch])
            elif ord(ch) < 32:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'

    return "{" + ",".join(f"{value(k)}:{value(v)}" for k, v in pairs) + "}"


def key_columns_in_capture(info: TableInfo) -> list[str]:
    """The key columns in the order the capture's key expression lists them."""
    trigger = install.trigger_statements(MS, info)[0]
    expr = re.search(r"CROSS APPLY \(SELECT \(SELECT (.*?) FOR JSON PATH", trigger)
    assert expr is not None
    return re.findall(r" AS \[(\w+)\]", " " + expr.group(1))


@pytest.mark.parametrize(
    "key",
    [
        {"region": "EU", "id": 42},
        {"id": -9007199254740993, "region": 'Zürich "d\'Or" a/b\\c'},
        {"region": "tab\tnew\nline\x01\x1f", "id": 0},
        {"region": "日本", "id": 7},
    ],
)
def test_key_text_is_what_the_capture_writes(key: dict[str, Any]) -> None:
    order = key_columns_in_capture(orders_info())
    assert order == ["id", "region"]  # sorted by name
    assert MS.key_text(key) == for_json([(name, key[name]) for name in order])


def test_key_text_of_a_decimal_and_a_case_sensitive_key() -> None:
    """A decimal key travels as its text at the column's scale (CONVERT): a string;
    names sort as Python sorts them (upper case first)."""
    info = table_from_ddl(
        MS, "CREATE TABLE k (b DECIMAL(9, 2) NOT NULL, Z INT NOT NULL, PRIMARY KEY (b, Z))", "k"
    )
    assert key_columns_in_capture(info) == ["Z", "b"]
    key = {"b": "12.50", "Z": 1}
    assert MS.key_text(key) == '{"Z":1,"b":"12.50"}' == for_json([("Z", 1), ("b", "12.50")])


# --- errors --------------------------------------------------------------------------------


def _stand_in_pyodbc() -> types.ModuleType:
    """pyodbc's exception classes (PEP 249), as a module."""
    module = types.ModuleType("pyodbc")

    class Error(Exception):
        pass

    class DatabaseError(Error):
        pass

    class InterfaceError(Error):
        pass

    classes: dict[str, type[Exception]] = {"Error": Error, "DatabaseError": DatabaseError}
    classes["InterfaceError"] = InterfaceError
    for name in ("DataError", "OperationalError", "IntegrityError", "InternalError",
                 "ProgrammingError", "NotSupportedError"):  # fmt: skip
        classes[name] = type(name, (DatabaseError,), {})
    for name, cls in classes.items():
        setattr(module, name, cls)
    return module


@pytest.fixture
def pyodbc(monkeypatch: pytest.MonkeyPatch) -> Any:
    try:
        import pyodbc as real

        return real
    except ImportError:
        module = _stand_in_pyodbc()
        monkeypatch.setitem(sys.modules, "pyodbc", module)
        return module


def odbc_error(pyodbc: Any, cls: str, state: str, number: int, message: str) -> Exception:
    text = (
        f"[{state}] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]{message} "
        f"({number}) (SQLExecDirectW)"
    )
    exc: Exception = getattr(pyodbc, cls)(state, text)
    return exc


CASES = [
    ("Error", "40001", 1205, "Transaction (Process ID 57) was deadlocked on lock resources "
     "with another process and has been chosen as the deadlock victim. Rerun the "
     "transaction.", dbapi.Deadlock),
    ("OperationalError", "HYT00", 1222, "Lock request time out period exceeded.", dbapi.Deadlock),
    ("OperationalError", "08S01", 10054, "TCP Provider: An existing connection was forcibly "
     "closed by the remote host.", dbapi.ConnectionLost),
    ("OperationalError", "08S01", 0, "Communication link failure", dbapi.ConnectionLost),
    ("IntegrityError", "23000", 547, "The INSERT statement conflicted with the FOREIGN KEY "
     'constraint "fk_lines_orders".', dbapi.ForeignKeyViolation),
    ("IntegrityError", "23000", 547, "The DELETE statement conflicted with the REFERENCE "
     'constraint "fk_lines_orders".', dbapi.ForeignKeyViolation),
    ("IntegrityError", "23000", 547, 'The INSERT statement conflicted with the CHECK '
     'constraint "orders_doc_is_json".', dbapi.Unwritable),
    ("IntegrityError", "23000", 2627, "Violation of PRIMARY KEY constraint 'orders_pk'. "
     "Cannot insert duplicate key in object 'dbo.orders'.", dbapi.UniqueViolation),
    ("IntegrityError", "23000", 2601, "Cannot insert duplicate key row in object 'dbo.orders' "
     "with unique index 'ux'.", dbapi.UniqueViolation),
    ("IntegrityError", "23000", 515, "Cannot insert the value NULL into column 'lines'.",
     dbapi.Unwritable),
    ("DataError", "22001", 2628, "String or binary data would be truncated in table "
     "'dbo.orders', column 'code'.", dbapi.Unwritable),
    ("DataError", "22003", 8115, "Arithmetic overflow error converting nvarchar to data type "
     "numeric.", dbapi.Unwritable),
    ("DataError", "22018", 245, "Conversion failed when converting the nvarchar value "
     "'bridge refuses 12.345 for column amount decimal(12,2): more decimal places than its "
     "scale' to data type int.", dbapi.Unwritable),
    ("DataError", "22007", 241, "Conversion failed when converting date and/or time from "
     "character string.", dbapi.Unwritable),
    ("ProgrammingError", "42S02", 208, "Invalid object name 'bridge_outbox'.", dbapi.DbError),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "state", "number", "message", "kind"), CASES)
def test_classify(
    pyodbc: Any, cls: str, state: str, number: int, message: str, kind: type[dbapi.DbError]
) -> None:
    exc = odbc_error(pyodbc, cls, state, number, message)
    if number:
        assert error_numbers(exc) == [number]
    assert classify(exc) is kind


def test_classify_leaves_other_errors_alone(pyodbc: Any) -> None:
    assert classify(ValueError("not the database's")) is None


def test_a_driver_error_is_raised_as_dbapi_s_class(pyodbc: Any) -> None:
    """Through dbapi.Connection.call, as the core sees it (the driver's error as cause)."""
    error = odbc_error(pyodbc, "IntegrityError", "23000", 2627, "Violation of PRIMARY KEY")

    def fails() -> None:
        raise error

    conn = MS_connection()
    with pytest.raises(dbapi.UniqueViolation) as caught:
        conn.call(fails)
    assert caught.value.__cause__ is error
    assert isinstance(caught.value, MS.errors.unwritable)


def test_the_errors_the_core_catches() -> None:
    e = MS.errors
    assert e.any == (dbapi.DbError,) and e.deadlock == (dbapi.Deadlock,)
    assert issubclass(dbapi.ForeignKeyViolation, e.unwritable[0])


# --- the connection ------------------------------------------------------------------------


class _Raw:
    """A driver connection that must not be used (bind needs none)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the driver was used: {name}")


def MS_connection() -> dbapi.Connection:  # noqa: N802 - reads as the class it builds
    from bridge.dialects.mssql import Connection

    return Connection(_Raw(), "qmark", classify)


def test_bind_rewrites_placeholders_to_qmark() -> None:
    conn = MS_connection()
    when = dt.datetime(2026, 11, 24, 11, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    text, args = conn.bind(
        "SELECT %(a)s, %(b)s, %(a)s, %(when)s, %(seqs)s, N'100%%'",
        {"a": "x", "b": Decimal("1.50"), "when": when, "seqs": [3, 5], "unused": 1},
    )
    assert text == "SELECT ?, ?, ?, ?, ?, N'100%'"
    # aware datetimes as naive UTC ISO text (CAST to datetime2(6) by the statements);
    # lists as their JSON text (read with OPENJSON)
    assert args == ["x", Decimal("1.50"), "x", "2026-11-24T10:00:00.123456", "[3, 5]"]
    assert conn.bind("SELECT 1", None) == ("SELECT 1", None)


def test_a_template_binds_every_placeholder() -> None:
    """Every %(name)s of an apply statement becomes one ? (SQL Server allows 2,100)."""
    conn = MS_connection()
    claim = apply.statements(MS, orders_info()).claim
    names = re.findall(r"%\((\w+)\)s", claim)
    params = {n: "v" for n in names}
    text, args = conn.bind(claim, params)
    assert text.count("?") == len(args) == len(names) < 2100
    assert "%(" not in text


def test_connection_string() -> None:
    conninfo, password = connection_string(
        "mssql+pyodbc://bridge:p%3Bw%7Dd@db.example:14330/sales"
        "?driver=ODBC+Driver+18+for+SQL+Server&TrustServerCertificate=yes"
    )
    assert password == "p;w}d"
    assert conninfo == (
        "DRIVER={ODBC Driver 18 for SQL Server};SERVER=db.example,14330;DATABASE={sales};"
        "APP=bridge;UID={bridge};PWD={p;w}}d};TrustServerCertificate=yes"
    )
    default, _ = connection_string("mssql+pyodbc://sa:x@localhost/db")
    assert default.startswith("DRIVER={ODBC Driver 18 for SQL Server};SERVER=localhost,1433;")
    raw, _ = connection_string("mssql+pyodbc://?odbc_connect=DSN%3Dsales")
    assert raw == "DSN=sales"
    with pytest.raises(DatabaseError, match="names no database"):
        connection_string("mssql+pyodbc://sa:x@localhost")


def test_the_url_names_this_dialect() -> None:
    assert isinstance(by_name("mssql"), MSSQLDialect)


def test_connect_without_the_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyodbc", None)  # import pyodbc raises ImportError
    with pytest.raises(DatabaseError, match="pyodbc.*ODBC Driver 18"):
        MS.connect("mssql+pyodbc://sa:x@localhost:1433/db")


def test_utc_row_filter() -> None:
    from bridge.dialects.dbapi import utc_row as _utc

    naive = dt.datetime(2026, 1, 2, 3, 4, 5, 678901)
    assert _utc((1, naive, "x")) == (1, naive.replace(tzinfo=dt.UTC), "x")


# --- introspection (the Python side, on rows as introspect_columns returns them) ----------


class _Rows:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.seen: list[Any] = []

    def execute(self, sql: str, params: Any) -> _Rows:
        self.seen.append(params)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


def test_introspect() -> None:
    rows = [
        ("id", 1, "int", "int", "", 1, False, True),
        ("doc", 2, "nvarchar(max)", "nvarchar", "json", None, False, False),
        ("total", 3, "decimal(12,2)", "decimal", "", None, True, False),
        ("rv", 4, "timestamp", "timestamp", "", None, True, False),
        ("at", 5, "datetimeoffset(7)", "datetimeoffset", "", None, False, False),
    ]
    conn = _Rows(rows)
    info = MS.introspect(conn, "sales.events")  # type: ignore[arg-type]
    assert conn.seen == [{"table": "[sales].[events]"}]
    assert [c.name for c in info.columns] == ["id", "doc", "at"]
    assert [c.kind for c in info.columns] == ["int", "json", "timestamptz"]
    assert [c.param for c in info.columns] == ["p1", "p2", "p5"]
    assert info.generated == ("total", "rv") and info.identity_always
    assert [c.name for c in info.json_text] == ["doc"]
    with pytest.raises(SchemaError, match="does not exist"):
        MS.introspect(_Rows([]), "nothere")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="no primary key"):
        MS.introspect(_Rows([(*rows[1][:5], None, False, False)]), "t")  # type: ignore[arg-type]


# --- printing ------------------------------------------------------------------------------


def test_printed_batches_end_with_go() -> None:
    assert MS.printed("SELECT 1") == "SELECT 1;\nGO"
    assert MS.printed("SELECT 1;\n") == "SELECT 1;\nGO"
    trigger = MS.printed(install.trigger_statements(MS, orders_info())[0])
    assert trigger.endswith("\nEND;\nGO")
    # a DBA's script: what it is and how to remove it, before the CREATE TRIGGER (alone in
    # its batch: nothing but comments before it)
    head = trigger[: trigger.index("CREATE OR ALTER TRIGGER")]
    assert all(line.startswith("--") for line in head.splitlines())
    assert "bridge uninstall-triggers --table orders" in head
    assert "-- generated by bridge" in trigger and "columns hash" in trigger


def test_every_printed_script_splits_into_its_batches() -> None:
    """GO alone on its line after each statement, never inside one."""
    statements = install.init_statements(MS, "PARIS")
    text = printed(statements)
    parts = [p.strip() for p in re.split(r"^GO$", text, flags=re.MULTILINE) if p.strip()]
    assert len(parts) == len(statements)


def test_the_site_name_is_a_string_literal() -> None:
    init = install.init_statements(MS, "O'HARE")
    assert any("DEFAULT N'O''HARE' FOR origin" in s for s in init)
    assert any("N'O''HARE' AS value" in s for s in init)


def test_the_payload_is_the_mariadb_payload() -> None:
    """{"table", "op", "key", "row", "json_text", "seen"}, in that order."""
    trigger = install.trigger_statements(MS, orders_info())[0]
    names = re.findall(r" AS \[(table|op|key|row|json_text|seen)\]", trigger)
    assert names == ["table", "op", "key", "row", "json_text", "seen"] * 4


def test_apply_sessions_are_marked_and_skipped() -> None:
    begin = MS.render("apply_begin", tables=["'[orders]'"])
    assert "EXEC sys.sp_set_session_context @key = N'bridge.applying', @value = 1;" in begin
    trigger = install.trigger_statements(MS, orders_info())[0]
    assert "IF SESSION_CONTEXT(N'bridge.applying') IS NOT NULL\n        RETURN;" in trigger


def test_dispatcher_lease_is_the_session_s() -> None:
    lease = MS.render("dispatcher_lease")
    assert "@LockOwner = 'Session', @LockTimeout = 0" in lease
    guard = MS.statements("uninit_guard", outbox=True)
    assert "@LockOwner = 'Transaction', @LockTimeout = 0" in guard[0]
    assert "WITH (TABLOCKX, HOLDLOCK)" in guard[1]


def test_the_dispatcher_skips_what_is_locked() -> None:
    mark = MS.render("outbox_mark_published")
    assert "WITH (UPDLOCK, ROWLOCK, READPAST)" in mark
    assert mark.index("COMMIT TRANSACTION") < mark.index(
        "SELECT l.seq FROM @bridge_locked AS l ORDER"
    )
    assert "WITH (READCOMMITTEDLOCK, READPAST)" in MS.render("outbox_fetch")


def test_a_decimal_with_too_many_places_is_refused_not_rounded() -> None:
    upsert = apply.statements(MS, orders_info()).upsert
    assert (
        "CAST(CASE WHEN CHARINDEX(N'.', %(p7)s) > 0 AND LEN(REPLACE(RTRIM(REPLACE(SUBSTRING("
        "%(p7)s, CHARINDEX(N'.', %(p7)s) + 1, 100), N'0', N' ')), N' ', N'0')) > 2 THEN "
    ) in upsert
    money = apply.statements(MS, events_info()).upsert
    assert "N' for column price money: more decimal places than its scale'" in money
    assert "> 4 THEN" in money


def test_identity_is_inserted_never_updated() -> None:
    stmts = apply.statements(MS, events_info())
    assert "SET IDENTITY_INSERT [events] ON;" in stmts.insert
    assert "SET IDENTITY_INSERT [events] OFF;" in stmts.insert
    assert "[id] = " not in stmts.upsert.split("WHERE")[0]


def test_stamps_are_bound_as_text_the_statements_cast() -> None:
    """Every timestamp parameter is CAST to DATETIME2(6) where it is used."""
    for r in rendered():
        if r.template == "archive_insert":  # its `ts` is a JSON array of texts (OPENJSON)
            continue
        for stmt in r.statements:
            for name in ("ts", "decided_ts", "decided_pending", "passed", "local_ts"):
                for m in re.finditer(rf"%\({name}\)s", stmt):
                    assert stmt[: m.start()].endswith("CAST("), (r.label, name)
                    assert stmt[m.end() :].startswith(" AS datetime2(6))"), (r.label, name)


def test_json_of_the_meta_entry() -> None:
    """The trigger's entry in bridge_meta is a JSON object that bridge.install.drift reads."""
    meta = install.trigger_statements(MS, orders_info())[1]
    assert "(SELECT N'0.1.0' AS version" in meta or "AS version, N'" in meta
    hash_ = orders_info().columns_hash
    assert f"N'{hash_}' AS columns_hash" in meta
    assert json.loads(json.dumps({"version": "x", "columns_hash": hash_}))
