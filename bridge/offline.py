"""A business table described from its `CREATE TABLE` text instead of a live database, so
that `install-triggers --sql --ddl orders.sql` renders a dialect's script before bridge
ever connects to the server (the golden tests of SQL Server and Oracle use it here).

sqlglot reads the statement in the dialect's own syntax; each column becomes what the
dialect's introspection would have read from its catalog: the type as declared, the base
type (lower case, without its length or precision: `decimal`, `nvarchar`, `number`,
`timestamp with time zone`), the primary key (a column constraint or a table constraint,
in its order) and whether the column is computed (never captured).
"""

from __future__ import annotations

import re
from pathlib import Path

import sqlglot
from sqlglot import exp

from bridge.dialects.base import Column, Dialect, TableInfo
from bridge.errors import ConfigError, SchemaError

PARAMS = re.compile(r"\s*\([^)]*\)")


def base_type(sql_type: str) -> str:
    """`DECIMAL(12, 2)` -> `decimal`; `TIMESTAMP(6) WITH TIME ZONE` -> `timestamp with
    time zone`; `VARCHAR2(20 CHAR)` -> `varchar2`."""
    return " ".join(PARAMS.sub("", sql_type).lower().split())


def _name(node: exp.Expression) -> str:
    return node.name if isinstance(node, exp.Identifier | exp.Column) else node.sql()


def tables_in(dialect: Dialect, text: str) -> dict[str, exp.Create]:
    """The CREATE TABLE statements of a DDL text, by table name (as written, schema.table
    when qualified)."""
    try:
        parsed = sqlglot.parse(text, read=dialect.sqlglot_name)
    except sqlglot.errors.ParseError as exc:
        raise ConfigError(
            f"the DDL given with --ddl is not {dialect.title} SQL that bridge can read: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    found: dict[str, exp.Create] = {}
    for statement in parsed:
        if isinstance(statement, exp.Create) and statement.kind == "TABLE":
            target = statement.this.this if isinstance(statement.this, exp.Schema) else None
            if isinstance(target, exp.Table):
                name = f"{target.db}.{target.name}" if target.db else target.name
                found[name] = statement
    return found


def table_from_ddl(dialect: Dialect, text: str, table: str) -> TableInfo:
    """The TableInfo of `table` from DDL text; SchemaError if the text has no CREATE TABLE
    of it or the table has no primary key."""
    found = tables_in(dialect, text)
    create = found.get(table) or next(
        (c for name, c in found.items() if name.lower() == table.lower()), None
    )
    if create is None:
        raise SchemaError(
            f"the DDL given has no CREATE TABLE {table}"
            + (f" (it has: {', '.join(found)})" if found else "")
        )
    schema = create.this
    assert isinstance(schema, exp.Schema)
    columns: list[Column] = []
    pk_names: list[str] = []
    generated: list[str] = []
    position = 0
    json_checked = _json_checked(schema)
    by_name: dict[str, Column] = {}
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            position += 1
            name = item.name
            kind = item.args.get("kind")
            sql_type = kind.sql(dialect=dialect.sqlglot_name) if kind is not None else ""
            constraints = [c.args.get("kind") for c in item.constraints]
            if any(isinstance(c, exp.ComputedColumnConstraint) for c in constraints):
                generated.append(name)
                continue
            if any(isinstance(c, exp.PrimaryKeyColumnConstraint) for c in constraints):
                pk_names.append(name)
            category = "json" if name in json_checked else ""
            column = dialect.column(position, name, sql_type, base_type(sql_type), category)
            by_name[name] = column  # as the DDL names it (Oracle's name may be normalised)
            columns.append(column)
        elif isinstance(item, exp.PrimaryKey):
            pk_names.extend(
                _name(e.this if isinstance(e, exp.Ordered) else e) for e in item.expressions
            )
        elif isinstance(item, exp.Constraint):
            for part in item.expressions:
                if isinstance(part, exp.PrimaryKey):
                    pk_names.extend(
                        _name(e.this if isinstance(e, exp.Ordered) else e) for e in part.expressions
                    )
    missing = [n for n in pk_names if n not in by_name]
    if missing:
        raise SchemaError(f"the primary key of {table} names columns it lacks: {missing}")
    return dialect.described(
        table, tuple(columns), tuple(by_name[n] for n in pk_names), tuple(generated)
    )


JSON_CHECK = re.compile(
    r"""^\s*(?:ISJSON\s*\(\s*["`\[]?(\w+)["`\]]?\s*\)\s*(?:>\s*0|=\s*1)?"""
    r"""|JSON_VALID\s*\(\s*["`\[]?(\w+)["`\]]?\s*\)"""
    r"""|["`\[]?(\w+)["`\]]?\s+IS\s+JSON\b.*)\s*$""",
    re.IGNORECASE,
)


def _json_checked(schema: exp.Schema) -> set[str]:
    """Columns whose CHECK constraint says they hold JSON documents (`doc IS JSON`,
    `ISJSON(doc) > 0`, `JSON_VALID(doc)`): a JSON column where the type does not say so
    (Oracle's CLOB, SQL Server's NVARCHAR(MAX), MariaDB's LONGTEXT)."""
    found: set[str] = set()
    for check in schema.find_all(exp.CheckColumnConstraint):
        text = check.this.sql() if check.this is not None else ""
        match = JSON_CHECK.match(text)
        if match:
            found.add(next(g for g in match.groups() if g))
    return found


def read_ddl(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the DDL file {path}: {exc.strerror}") from None
