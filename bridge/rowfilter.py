"""Row filters: `install-triggers --where "status <> 'draft'"` captures only the rows for
which a condition holds.

The condition is written once, in plain SQL (sqlglot's default dialect), and checked here
against a small grammar: a boolean expression over the table's own columns, literals,
comparisons, AND/OR/NOT, IN lists, IS [NOT] NULL/TRUE/FALSE, [NOT] LIKE, BETWEEN, + - *,
and LOWER/UPPER/COALESCE. Anything else (a subquery, an aggregate, a parameter, a function
of the database's own, a second statement) is refused with a ConfigError that says what is
allowed: the condition runs inside the capture trigger, in the application's transaction,
where a failing or side-effecting expression would fail or change the application's writes.

It is then rendered for a dialect with each column quoted and qualified by the row alias
the capture template names (PostgreSQL's transition-table aliases `n`/`o`, MariaDB's
`NEW`/`OLD`): sqlglot renders it with a placeholder table name, replaced by the alias
afterwards (Oracle's `:NEW` is no identifier sqlglot could render).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import TokenType
from sqlglot.tokens import Tokenizer

from bridge.dialects.base import Dialect, TableInfo
from bridge.errors import ConfigError

ALLOWED = (
    "allowed: the table's columns, literals (numbers, 'strings', TRUE, FALSE, NULL), "
    "= <> != < <= > >=, AND, OR, NOT, parentheses, IN (list of values), "
    "IS [NOT] NULL / TRUE / FALSE, [NOT] LIKE, [NOT] BETWEEN, + - *, LOWER, UPPER, COALESCE"
)
SEE = 'see "Row filters" in docs/dba.md'

# A condition: true, false or NULL for one row. Each node type with the arguments it may
# carry (any other argument, such as IN's subquery or LIKE's ESCAPE, is refused).
LOGIC: dict[type[exp.Expr], frozenset[str]] = {
    exp.And: frozenset({"this", "expression"}),
    exp.Or: frozenset({"this", "expression"}),
    exp.Not: frozenset({"this"}),
}
PREDICATES: dict[type[exp.Expr], frozenset[str]] = {
    exp.EQ: frozenset({"this", "expression"}),
    exp.NEQ: frozenset({"this", "expression"}),
    exp.GT: frozenset({"this", "expression"}),
    exp.GTE: frozenset({"this", "expression"}),
    exp.LT: frozenset({"this", "expression"}),
    exp.LTE: frozenset({"this", "expression"}),
    exp.In: frozenset({"this", "expressions"}),
    exp.Like: frozenset({"this", "expression", "negate"}),
    exp.Between: frozenset({"this", "low", "high", "symmetric"}),
}
# A value: what a predicate compares.
VALUES: dict[type[exp.Expr], frozenset[str]] = {
    exp.Neg: frozenset({"this"}),
    exp.Add: frozenset({"this", "expression"}),
    exp.Sub: frozenset({"this", "expression"}),
    exp.Mul: frozenset({"this", "expression"}),
    exp.Lower: frozenset({"this"}),
    exp.Upper: frozenset({"this"}),
    exp.Coalesce: frozenset({"this", "expressions"}),
}
# Text that would end the trigger body around the condition (PostgreSQL's dollar quote,
# the DELIMITER of MariaDB's printed script).
BODY_QUOTES = ("$bridge$", "$$")


@dataclass(frozen=True)
class RowFilter:
    """A checked condition over one table's columns, for one dialect."""

    text: str  # as the user wrote it: recorded in bridge_meta, read back by the next install
    condition: exp.Expr  # its columns named as the table names them
    dialect: str  # sqlglot's name of the dialect it is rendered for

    def on(self, alias: str) -> str:
        """The condition with every column qualified by `alias` (`n`, `NEW`, `:NEW`)."""
        placeholder = _placeholder(self.text, self.condition)

        def qualify(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column):
                return exp.Column(
                    this=exp.to_identifier(node.name, quoted=True),
                    table=exp.to_identifier(placeholder, quoted=False),
                )
            return node

        rendered = self.condition.transform(qualify).sql(dialect=self.dialect, comments=False)
        return rendered.replace(f"{placeholder}.", f"{alias}.")

    @property
    def literal(self) -> str:
        """The condition's text as a string literal of the dialect (for bridge_meta)."""
        return exp.Literal.string(self.text).sql(dialect=self.dialect)


def _placeholder(text: str, condition: exp.Expr) -> str:
    """A table name found nowhere in the condition (nor its strings): replaced by the alias."""
    taken = text.lower() + " " + " ".join(c.name.lower() for c in condition.find_all(exp.Column))
    n = 0
    while f"bridge_row{n}" in taken:
        n += 1
    return f"bridge_row{n}"


def _refuse(text: str, why: str) -> ConfigError:
    return ConfigError(f"row filter {text!r}: {why}; {SEE}")


def parse(text: str, columns: Sequence[str]) -> exp.Expr:
    """The condition `text` over a table of `columns`, each column named as the table
    names it; ConfigError for anything but a boolean expression over those columns."""
    if not text.strip():
        raise _refuse(text, "empty: write a condition such as status <> 'draft'")
    try:
        tokens = Tokenizer().tokenize(text)
    except TokenError as exc:
        raise _refuse(text, f"not SQL bridge can read ({exc})") from None
    if any(t.token_type == TokenType.SEMICOLON for t in tokens):
        raise _refuse(text, "a row filter is one condition, with nothing after it: remove the ;")
    try:
        condition = sqlglot.parse_one(text, read=None)
    except ParseError as exc:
        first = str(exc).splitlines()[0]
        raise _refuse(text, f"not a condition bridge can read ({first}); {ALLOWED}") from None
    _refuse_forbidden(text, condition)
    condition = condition.transform(lambda node: _resolve(text, node, columns))
    _check_condition(text, condition)
    return condition


def _refuse_forbidden(text: str, condition: exp.Expr) -> None:
    """The refusals that get a message of their own, wherever they are in the condition."""
    for node in condition.walk():
        if isinstance(node, exp.Select | exp.Subquery | exp.Exists | exp.Query):
            raise _refuse(
                text, "no subqueries: a row filter reads the changed row only, no other table"
            )
        if isinstance(node, exp.AggFunc):
            raise _refuse(
                text, f"no aggregates ({node.sql()}): a row filter tests one row at a time"
            )
        if isinstance(node, exp.Placeholder | exp.Parameter | exp.SessionParameter):
            raise _refuse(
                text,
                f"no parameters or variables ({node.sql()}): write the values in the "
                "condition itself",
            )


def _resolve(text: str, node: exp.Expr, columns: Sequence[str]) -> exp.Expr:
    """A column reference as the table names it (an unquoted name matches whatever its
    case, if only one column does); ConfigError for another table's or an unknown column."""
    if not isinstance(node, exp.Column):
        return node
    known = ", ".join(columns)
    if node.table or not isinstance(node.this, exp.Identifier):
        raise _refuse(
            text,
            f"{node.sql()}: name the table's columns alone, without a table or schema "
            f"(columns: {known})",
        )
    name = node.name
    if name.startswith("$"):  # PostgreSQL's $1, read as a name
        raise _refuse(
            text, f"no parameters or variables ({name}): write the values in the condition itself"
        )
    if name not in columns:
        matches = [c for c in columns if c.lower() == name.lower()]
        if node.this.quoted or len(matches) != 1:
            raise _refuse(
                text,
                f"unknown column {name!r} (the table's columns: {known}); strings are "
                "written in single quotes",
            )
        name = matches[0]
    return exp.Column(this=exp.to_identifier(name, quoted=True))


def _extra_args(node: exp.Expr, allowed: frozenset[str]) -> list[str]:
    return [k for k, v in node.args.items() if v not in (None, False, []) and k not in allowed]


def _check_condition(text: str, node: exp.Expr) -> None:
    """`node` must be true, false or NULL for a row: logic over predicates."""
    if isinstance(node, exp.Paren):
        _check_condition(text, node.this)
        return
    kind = type(node)
    if kind in LOGIC and not _extra_args(node, LOGIC[kind]):
        for part in (node.this, node.args.get("expression")):
            if part is not None:
                _check_condition(text, part)
        return
    if kind is exp.Is and isinstance(node.expression, exp.Null | exp.Boolean):
        _check_value(text, node.this)
        return
    if kind in PREDICATES and not _extra_args(node, PREDICATES[kind]):
        parts = [v for k, v in node.args.items() if k not in ("negate", "symmetric") and v]
        for part in parts:
            for value in part if isinstance(part, list) else [part]:
                _check_value(text, value)
        return
    if isinstance(node, exp.Column | exp.Literal | exp.Boolean | exp.Null) or kind in VALUES:
        raise _refuse(
            text,
            f"{node.sql()} is a value, not a condition: compare it, e.g. status <> 'draft' "
            "or flag = TRUE",
        )
    raise _refuse(text, f"{node.sql()} is not allowed in a row filter; {ALLOWED}")


def _check_value(text: str, node: exp.Expr) -> None:
    if isinstance(node, exp.Paren):
        _check_value(text, node.this)
        return
    if isinstance(node, exp.Column | exp.Null | exp.Boolean):
        return
    if isinstance(node, exp.Literal):
        return
    kind = type(node)
    if kind in VALUES and not _extra_args(node, VALUES[kind]):
        for part in node.args.values():
            for value in part if isinstance(part, list) else [part]:
                if isinstance(value, exp.Expr):
                    _check_value(text, value)
        return
    raise _refuse(text, f"{node.sql()} is not allowed in a row filter; {ALLOWED}")


def for_table(dialect: Dialect, info: TableInfo, text: str) -> RowFilter:
    """The row filter `text` of a table, checked against its columns and rendered for
    `dialect`; ConfigError if the condition is refused or the dialect takes no filter."""
    if not dialect.row_filters:
        raise ConfigError(
            f"{dialect.title}'s capture does not take a row filter yet: install the "
            f"triggers of {info.table.name} without --where (or with --where '' to remove "
            f"one); {SEE}"
        )
    condition = parse(text, [c.name for c in info.columns])
    row_filter = RowFilter(text=text.strip(), condition=condition, dialect=dialect.sqlglot_name)
    rendered = row_filter.on("bridge_row")
    for quote in BODY_QUOTES:
        if quote in rendered:
            raise _refuse(
                text,
                f"it holds {quote}, which would end the trigger's body: write the value "
                "another way (e.g. with LIKE and _ for the $)",
            )
    return row_filter
