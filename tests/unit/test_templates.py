"""The generated SQL, checked without a database: golden files reviewed by eye, every
statement of every template parsed, the 100-argument limit of PostgreSQL's variadic
functions, identifier quoting.

sqlglot only catches gross syntax errors here (it reads `LISTEN x` as a column alias and
cannot read PL/pgSQL at all): the real check of every statement, function bodies and
DROPs included, is tests/integration/test_sql_on_server.py, on the real server.

Regenerate the golden files with BRIDGE_UPDATE_GOLDEN=1: the golden tests then write them
and fail, so that the new files are reviewed (git diff) before a run without the variable
compares them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from bridge import apply, bulk, install
from bridge.dialects.base import TableInfo
from bridge.dialects.postgresql import PostgresDialect
from tests import sqlcheck
from tests.sqlcheck import SHAPES, Rendered

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
    """The apply statements of a table (their upsert and insert carry every column as
    text), the upsert and insert of an event that lacks `doc` and carries `tags` in its
    JSON form, the policy column's comparison and verify's read."""
    ctx = {"table": info.table, "info": info}
    some = [(c, "json" if c.name == "tags" else "text") for c in info.columns if c.name != "doc"]
    return [
        *dataclasses.astuple(apply.statements(PG, info)),
        PG.render("apply_upsert", present=some, new_row=False, **ctx),
        PG.render("apply_upsert", present=some, new_row=True, **ctx),
        PG.render("apply_compare", column=info.columns[3], theirs="text", mine="text"),
        PG.render("verify_rows", **ctx),
    ]


def rendered() -> list[Rendered]:
    return sqlcheck.render_all(PG, [s.info(PG) for s in SHAPES])


# --- golden files --------------------------------------------------------------------------


def check_golden(name: str, text: str, directory: Path = GOLDEN) -> None:
    """`text` must equal the reviewed file. With BRIDGE_UPDATE_GOLDEN set the file is
    written and the test fails: a file just written compared with itself proves nothing."""
    path = directory / name
    if os.environ.get("BRIDGE_UPDATE_GOLDEN"):
        changed = not path.exists() or path.read_text() != text
        path.write_text(text)
        pytest.fail(
            f"BRIDGE_UPDATE_GOLDEN is set: {path} was regenerated "
            f"({'CHANGED' if changed else 'unchanged'}) and not compared; review `git diff "
            f"{path}`, then run again without BRIDGE_UPDATE_GOLDEN",
            pytrace=False,
        )
    assert path.exists(), f"{path} missing: run with BRIDGE_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{path} differs (BRIDGE_UPDATE_GOLDEN=1 to regenerate)"


def script(statements: list[str]) -> str:
    return "\n\n".join(s if s.endswith(";") else s + ";" for s in statements) + "\n"


def test_capture_install_golden() -> None:
    check_golden(
        "postgresql_capture_install.sql", script(install.trigger_statements(PG, orders_info()))
    )


def test_capture_install_without_event_trigger_golden() -> None:
    """What a user who is not a superuser installs: the same, less the event trigger."""
    full = install.trigger_statements(PG, orders_info())
    without = install.trigger_statements(PG, orders_info(), event_trigger=False)
    assert [s for s in full if s not in without] == [
        s for s in full if "bridge_capture_after_alter" in s
    ]
    assert len(full) - len(without) == 3


def test_apply_statements_golden() -> None:
    check_golden("postgresql_apply.sql", script(apply_statements(orders_info())))


def test_apply_and_verify_begin_golden() -> None:
    refs = ["'orders'", '\'"sales"."orders"\'']
    text = script([PG.render("apply_begin", tables=refs), PG.render("verify_begin")])
    check_golden("postgresql_begin.sql", text)


def test_verify_chunk_golden() -> None:
    check_golden("postgresql_verify.sql", script(sqlcheck.verify_statements(PG, orders_info())))


def test_golden_shape_is_the_shared_orders_shape() -> None:
    """The server test runs the `orders` shape: it must be the golden files' table."""
    assert SHAPES[0].info(PG) == orders_info()


def test_a_golden_file_that_differs_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRIDGE_UPDATE_GOLDEN", raising=False)
    (tmp_path / "x.sql").write_text("SELECT 1;\n")
    check_golden("x.sql", "SELECT 1;\n", tmp_path)
    with pytest.raises(AssertionError, match="differs"):
        check_golden("x.sql", "SELECT 2;\n", tmp_path)
    with pytest.raises(AssertionError, match="missing"):
        check_golden("absent.sql", "SELECT 1;\n", tmp_path)


def test_regenerating_golden_files_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_UPDATE_GOLDEN", "1")
    (tmp_path / "x.sql").write_text("SELECT 1;\n")
    for text, word in (("SELECT 1;\n", "unchanged"), ("SELECT 2;\n", "CHANGED")):
        with pytest.raises(pytest.fail.Exception, match=f"regenerated \\({word}\\)"):
            check_golden("x.sql", text, tmp_path)
        assert (tmp_path / "x.sql").read_text() == text


# --- every template, every statement -------------------------------------------------------


def test_every_template_is_rendered_for_every_shape() -> None:
    done = rendered()
    assert {r.template for r in done} == set(sqlcheck.template_names(PG))
    per_table = {r.template for r in done if r.table}
    for template in per_table:
        # the set-based apply is not for a DEFERRABLE key (bridge/bulk.py)
        shapes = [s for s in SHAPES if not (template in bulk.TEMPLATES and s.deferrable)]
        assert {r.table for r in done if r.template == template} == {s.table for s in shapes}
    assert all(r.statements for r in done), [r.label for r in done if not r.statements]


# Valid PostgreSQL that sqlglot cannot read, removed before parsing (the server test runs
# the statement as written).
SQLGLOT_GAPS = (re.compile(r"^\s*OVERRIDING SYSTEM VALUE\s*$", re.MULTILINE),)


def parse(statement: str) -> exp.Expr:
    # psycopg placeholders are not SQL: swap them for literals to parse
    text = re.sub(r"%\((\w+)\)[sb]", "NULL", statement)
    for gap in SQLGLOT_GAPS:
        text = gap.sub("", text)
    return sqlglot.parse_one(text, read="postgres")


# sqlglot cannot read these; tests/integration/test_sql_on_server.py runs them on the server
SERVER_ONLY = re.compile(
    r"^\s*(LOCK TABLE|(CREATE|DROP) EVENT TRIGGER|SET CONSTRAINTS)\b", re.IGNORECASE
)


def test_every_statement_parses() -> None:
    """Every statement of every template, DROPs included, is understood by sqlglot, not
    passed through as an opaque command; the one kind it cannot read, a PL/pgSQL
    function, is checked on the server (its body run, branch by branch)."""
    opaque = []
    functions = 0
    for r in rendered():
        for stmt in r.statements:
            if sqlcheck.is_plpgsql_function(stmt):
                functions += 1
                continue
            if isinstance(parse(stmt), exp.Command) and not SERVER_ONLY.match(stmt):
                opaque.append(f"{r.label}: {stmt[:80]}")
    assert opaque == []
    # per table: its capture function, its after-ALTER form and the event trigger's
    # function (installed with every table), nothing else skipped
    assert functions == 3 * len(SHAPES)


def test_drop_statements_are_parsed_as_drops() -> None:
    drops = [
        (r.label, parse(s))
        for r in rendered()
        for s in r.statements
        if s.lstrip().upper().startswith("DROP") and not SERVER_ONLY.match(s)
    ]
    kinds = {(d.args.get("kind") or "").upper() for _, d in drops}
    assert {"TRIGGER", "FUNCTION", "TABLE"} <= kinds, drops
    assert all(isinstance(d, exp.Drop) for _, d in drops), drops


def test_an_unreadable_statement_fails_the_parse() -> None:
    with pytest.raises(sqlglot.errors.ParseError):
        parse("DROP TRIGGER IF EXISTS ON ON")
    assert isinstance(parse("CREATE FOO BAR"), exp.Command)  # what test_every_... refuses


# --- at most 100 arguments per call ---------------------------------------------------------


def test_no_call_takes_more_than_100_arguments() -> None:
    problems = [
        f"{r.label}: {p}"
        for r in rendered()
        for stmt in r.statements
        for p in sqlcheck.too_many_arguments(stmt)
    ]
    assert problems == []


def test_the_argument_check_sees_the_wide_row_in_the_function_body() -> None:
    """Not vacuous: the scan reaches into the capture function's body and finds the wide
    table's whole row (120 columns, 240 arguments) there, split over several calls."""
    wide = next(s for s in SHAPES if s.table == "wide").info(PG)
    function = next(s for s in install.trigger_statements(PG, wide) if "$" in s)
    assert sqlcheck.calls(function) == []  # outside its body: the header alone
    body_calls = sqlcheck.every_call(function)
    assert max(c.args for c in body_calls) <= sqlcheck.MAX_ARGS
    keys = {i for i in range(120) if any(f"'c{i}'" in c.text for c in body_calls)}
    assert keys == set(range(120)), f"columns no call builds: {set(range(120)) - keys}"


def _call(n: int, name: str = "jsonb_build_object") -> str:
    """A call with n arguments, made to fool a naive scan: nested calls, commas and
    parentheses in strings, comments and quoted identifiers."""
    args = []
    for i in range(n):
        args.append(
            [
                f"'k{i}'",
                f'to_jsonb(t."col, ({i}")',
                "'a, b) c'",
                "E'it\\'s, (x'",
                f"coalesce(t.a, t.b, {i})",
                "ARRAY[1, 2, 3]",
                f"/* , ) */ {i}",
            ][i % 7]
        )
    return f"{name}(" + ", ".join(args) + ")"


@pytest.mark.parametrize("name", ["jsonb_build_object", "json_build_object"])
def test_the_argument_check_counts_exactly(name: str) -> None:
    for n in (0, 1, 2, 99, 100, 101, 150):
        found = sqlcheck.calls(f"SELECT {_call(n, name)} AS r FROM t")
        assert [(c.name, c.args) for c in found] == [(name, n)]


def test_the_argument_check_reports_101_arguments() -> None:
    assert sqlcheck.too_many_arguments(f"SELECT {_call(100)}") == []
    problems = sqlcheck.too_many_arguments(f"SELECT {_call(101)}")
    assert len(problems) == 1 and "with 101 arguments" in problems[0], problems


def test_the_argument_check_reports_101_arguments_nested_in_a_function_body() -> None:
    wrapped = (
        'CREATE OR REPLACE FUNCTION "f"() RETURNS trigger LANGUAGE plpgsql AS $bridge$\n'
        "BEGIN\n"
        f"    INSERT INTO o (p) SELECT jsonb_build_object('k', 1) || {_call(101)} FROM t;\n"
        "    RETURN NULL;\n"
        "END\n$bridge$"
    )
    problems = sqlcheck.too_many_arguments(wrapped)
    assert len(problems) == 1 and "with 101 arguments" in problems[0], problems
    # what the old check did (split at "jsonb_build_object(", count commas before the
    # first ")") saw no problem in the same text:
    assert all(
        call.split(")")[0].count(",") < 100 for call in wrapped.split("jsonb_build_object(")[1:]
    )


def test_the_scanner_refuses_what_it_cannot_close() -> None:
    for broken in ("SELECT jsonb_build_object('a', 1", "SELECT 'open", "AS $bridge$ BEGIN"):
        with pytest.raises(ValueError):
            sqlcheck.too_many_arguments(broken)


# --- identifiers ---------------------------------------------------------------------------


def test_every_identifier_is_quoted() -> None:
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
        new_row=False,
    )
    assert 'INSERT INTO "sales"."orders" ("id", "Customer"' in upsert


def info_of_sales() -> TableInfo:
    return orders_info("sales.orders")


def test_wide_tables_are_built_in_chunks() -> None:
    cols = tuple(PG.column(i, f"c{i}", "numeric", "numeric", "N") for i in range(120))
    info = TableInfo(table=PG.table_ref("wide"), columns=cols, pk=cols[:1], non_pk=cols[1:])
    text = script(install.trigger_statements(PG, info))
    # jsonb_build_object accepts at most 100 arguments: the row is built in several calls
    assert text.count(") || pg_catalog.jsonb_build_object(") >= 2
    assert sqlcheck.too_many_arguments(text) == []


def test_cleanup_dry_run_counts_under_the_same_conditions_as_the_delete():
    def wheres(dry_run: bool) -> list[str]:
        found = []
        for switches in sqlcheck.cleanup_variants():
            if switches["dry_run"] != dry_run:
                continue
            for stmt in PG.statements("cleanup", **switches):
                assert ("DELETE" in stmt) is not dry_run
                parsed = sqlglot.parse_one(re.sub(r"%\((\w+)\)s", "1", stmt), read="postgres")
                # the DELETE's own WHERE picks rows by ctid; the condition is the inner one
                where = list(parsed.find_all(sqlglot.exp.Where))[-1]
                found.append(where.sql(dialect="postgres"))
        return found

    deleting = wheres(dry_run=False)
    assert len(deleting) == 5 and all("< 1" in w for w in deleting)
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
