"""MariaDB's generated SQL, checked without a database (the live checks are the
integration tests: test_conformance, test_mixed_types): golden files of an `orders` table
read from its CREATE TABLE text (tests/unit/golden/mariadb_orders.sql, a composite key and
a column of each common type), every statement of every template parsed by sqlglot,
identifier quoting, the key text the capture writes, the Python side of the dialect.

Regenerate the golden files with BRIDGE_UPDATE_GOLDEN=1 (tests/unit/test_templates.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Any

import pymysql
import pytest
import sqlglot

from bridge import apply, install, offline
from bridge.dialects import dbapi
from bridge.dialects.base import TableInfo
from bridge.dialects.mariadb import MariaDBDialect, classify
from bridge.errors import IdentifierError
from tests import sqlcheck
from tests.unit.test_templates import check_golden

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"
MARIA = MariaDBDialect()


def orders() -> TableInfo:
    return offline.table_from_ddl(MARIA, (GOLDEN / "mariadb_orders.sql").read_text(), "orders")


def printed(statements: list[str]) -> str:
    out = io.StringIO()
    sink = install.PrintSink(MARIA, out)
    for s in statements:
        sink.execute(s)
    return out.getvalue()


def test_orders_is_read_from_its_ddl() -> None:
    info = orders()
    assert [c.name for c in info.pk] == ["region", "id"]
    assert info.generated == ("total",)
    kinds = {c.name: c.kind for c in info.columns}
    assert kinds == {
        "region": "text",
        "id": "int",
        "customer": "text",
        "amount": "decimal",
        "paid": "bool",
        "score": "float",
        "note": "text",
        "photo": "bytes",
        "token": "uuid",
        "ordered_on": "date",
        "ships_at": "time",
        "updated_at": "timestamp",
        "shipped_at": "timestamptz",
        "doc": "json",
    }


def test_capture_install_golden() -> None:
    statements = install.trigger_statements(MARIA, orders(), bridge_schema="")
    check_golden("mariadb_capture_install.sql", printed(statements))


def test_init_golden() -> None:
    check_golden("mariadb_init.sql", printed(install.init_statements(MARIA, "LONDON")))


def test_apply_golden() -> None:
    info = orders()
    ctx: dict[str, Any] = {"table": info.table, "info": info}
    some = [(c, "text") for c in info.columns if c.name != "doc"]
    statements = [
        *dataclasses.astuple(apply.statements(MARIA, info)),
        MARIA.render("apply_upsert", present=some, new_row=False, **ctx),
        MARIA.render("apply_compare", column=info.columns[3], theirs="text", mine="text"),
        MARIA.render("verify_rows", **ctx),
        MARIA.render("outbox_delete"),
    ]
    check_golden("mariadb_apply.sql", "\n\n-- bridge:next\n\n".join(statements) + "\n")


def test_verify_chunk_golden() -> None:
    statements = sqlcheck.verify_statements(MARIA, orders())
    check_golden("mariadb_verify.sql", "\n\n-- bridge:next\n\n".join(statements) + "\n")


def shapes() -> list[TableInfo]:
    return [s.info(MARIA) for s in sqlcheck.SHAPES]


def test_every_template_is_rendered_and_parses() -> None:
    rendered = sqlcheck.render_all(MARIA, [orders(), *shapes()])
    names = {r.template for r in rendered}
    assert names >= set(sqlcheck.template_names(MARIA)) - {"apply_constraints", "verify_begin"}
    checked = 0
    for r in rendered:
        for statement in r.statements:
            for part in dbapi.split(statement):
                if "CREATE TRIGGER" in part:
                    # sqlglot does not read MariaDB's compound statements (BEGIN ... END):
                    # the trigger is checked for balance and created live by the tests
                    code = re.sub(r"--[^\n]*|'(?:[^']|'')*'", "", part)
                    assert len(re.findall(r"\bBEGIN\b", code)) == len(
                        re.findall(r"^\s*END;?\s*$", code, re.M)
                    ), part
                    # IF statements (the IF() function takes no space before its parenthesis)
                    assert len(re.findall(r"(?<!END )\bIF\s", code)) == code.count("END IF")
                    continue
                # parameters as user variables, which sqlglot reads in MySQL's syntax
                text = re.sub(r"%\((\w+)\)s", r"@bridge_p_\1", part).replace("%%", "%")
                # sqlglot does not read SELECT ... INTO @a, @b (MariaDB does): left out
                text = re.sub(r"\bINTO (@\w+(?:, @\w+)*)", "", text)
                try:
                    sqlglot.parse_one(text, read="mysql")
                except sqlglot.errors.ParseError as exc:
                    pytest.fail(f"{r.template} ({r.table}): {exc}\n{text}")
                checked += 1
    assert checked > 100


def test_the_script_wraps_trigger_bodies_for_the_mysql_client() -> None:
    text = printed(install.trigger_statements(MARIA, orders(), bridge_schema="sales"))
    assert text.count("DELIMITER $$") == 3 and text.count("DELIMITER ;") == 3
    assert "`sales`.bridge_outbox" in text
    assert "removed by bridge uninstall-triggers --table orders" in text


def test_names_are_quoted_and_limited() -> None:
    info = (
        offline.table_from_ddl(
            MARIA,
            "CREATE TABLE `Order Lines` (`Key` BIGINT PRIMARY KEY, `select` TEXT)",
            "Order Lines",
        )
        if False
        else None
    )  # a space is not an accepted name (docs/configuration.md)
    assert info is None
    mixed = offline.table_from_ddl(
        MARIA, "CREATE TABLE `Orders` (`Key` BIGINT PRIMARY KEY, `select` TEXT)", "Orders"
    )
    text = "\n".join(install.trigger_statements(MARIA, mixed, bridge_schema=""))
    assert "NEW.`Key`" in text and "NEW.`select`" in text and "ON `Orders`" in text
    with pytest.raises(IdentifierError):
        MARIA.capture_context("t" * 60)  # bridge_ins_ + 60 > 64 characters


@pytest.mark.parametrize(
    "key",
    [{"id": 42}, {"id": 1, "region": 'né "q" \\ ✓'}, {"amount": "12.50", "id": -7}],
)
def test_key_text_is_what_json_object_writes(key: dict[str, Any]) -> None:
    # JSON_OBJECT writes `{"k": v, "k2": v2}`: a space after : and ,, non-ASCII as is,
    # " and \ escaped (seen on MariaDB 10.11: SELECT JSON_OBJECT('id', 1, 'r', 'né"')
    # gives {"id": 1, "r": "né\"")
    text = MARIA.key_text(key)
    assert json.loads(text) == key
    assert ", " in text or len(key) == 1
    assert "\\u" not in text


def error(code: int, cls: type[BaseException] = pymysql.err.OperationalError) -> BaseException:
    return cls(code, "message")


@pytest.mark.parametrize(
    "exc,kind",
    [
        (error(1213), dbapi.Deadlock),
        (error(1205), dbapi.Deadlock),
        (error(2013), dbapi.ConnectionLost),
        (error(2006), dbapi.ConnectionLost),
        (pymysql.err.InterfaceError(0, ""), dbapi.ConnectionLost),
        (error(1452, pymysql.err.IntegrityError), dbapi.ForeignKeyViolation),
        (error(1062, pymysql.err.IntegrityError), dbapi.UniqueViolation),
        (error(1406, pymysql.err.DataError), dbapi.Unwritable),
        (error(1264, pymysql.err.DataError), dbapi.Unwritable),
        (error(1292, pymysql.err.OperationalError), dbapi.Unwritable),
        (error(1064, pymysql.err.ProgrammingError), dbapi.DbError),
        (ValueError("not the driver's"), None),
    ],
)
def test_classify(exc: BaseException, kind: type[dbapi.DbError] | None) -> None:
    assert classify(exc) is kind


def test_binds_and_read_values() -> None:
    conn = dbapi.Connection(None, "pyformat", classify)
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    sql, args = conn.bind("SELECT %(a)s, %(b)s, %(c)s", {"a": at, "b": [1, 2], "c": "x"})
    assert sql == "SELECT %(a)s, %(b)s, %(c)s"
    assert args == {"a": dt.datetime(2026, 1, 2, 1, 4, 5, 6), "b": "[1, 2]", "c": "x"}
    assert conn.bind("SELECT '%Y'", None) == ("SELECT '%Y'", None)  # no parameters: as is
    qmark = dbapi.Connection(None, "qmark", classify)
    assert qmark.bind("x = %(a)s AND y = %(b)s AND z = %(a)s AND '%%'", {"a": 1, "b": 2}) == (
        "x = ? AND y = ? AND z = ? AND '%'",
        [1, 2, 1],
    )
    named = dbapi.Connection(None, "named", classify)
    assert named.bind("x = %(a)s OR %(a)s", {"a": 1}) == ("x = :a OR :a", {"a": 1})
