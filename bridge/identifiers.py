"""Validation and per-dialect quoting of table and column names.

Names reach SQL only through `quote()`: validated against a strict pattern first, then
quoted by sqlglot for the target dialect, never pasted raw. Being always quoted, names are
case-sensitive. What is accepted is documented in docs/configuration.md, "Table names":
keep the two in step.
"""

from __future__ import annotations

import re

from sqlglot import exp

from bridge.errors import IdentifierError

# Letters, digits, _ and $, starting with a letter or _: what every supported dialect
# accepts once quoted, and nothing that could close a quote.
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
MAX_LENGTH = {"postgres": 63, "tsql": 128, "oracle": 128, "mysql": 64, "sqlite": 128}
SEE = 'see "Table names" in docs/configuration.md'


def validate(name: str, dialect: str = "postgres", what: str = "table") -> str:
    """Return `name` unchanged if it is a valid identifier, else raise IdentifierError."""
    if not isinstance(name, str) or not NAME.match(name):
        raise IdentifierError(
            f"{what} name {name!r} is not a valid identifier: use ASCII letters, digits, _ "
            "or $, starting with a letter or _, unquoted (schema-qualified as "
            f"schema.table); {SEE}"
        )
    limit = MAX_LENGTH.get(dialect, 63)
    if len(name) > limit:
        raise IdentifierError(f"{what} name {name!r} is longer than {limit} characters; {SEE}")
    return name


def split_qualified(name: str, dialect: str = "postgres") -> tuple[str | None, str]:
    """`schema.table` -> ("schema", "table"); `table` -> (None, "table"), both validated."""
    parts = name.split(".") if isinstance(name, str) else [name]
    if len(parts) == 1:
        return None, validate(parts[0], dialect)
    if len(parts) == 2:
        return validate(parts[0], dialect, "schema"), validate(parts[1], dialect)
    raise IdentifierError(
        f"table name {name!r} has too many parts: use table or schema.table; {SEE}"
    )


def quote(name: str, dialect: str = "postgres", what: str = "column") -> str:
    """Validate and quote one identifier for `dialect` (a sqlglot dialect name)."""
    validate(name, dialect, what)
    return exp.to_identifier(name, quoted=True).sql(dialect=dialect)


def quote_qualified(name: str, dialect: str = "postgres") -> str:
    """Validate and quote `table` or `schema.table`."""
    schema, table = split_qualified(name, dialect)
    quoted = quote(table, dialect, "table")
    return f"{quote(schema, dialect, 'schema')}.{quoted}" if schema else quoted


def object_name(prefix: str, table: str, suffix: str = "", dialect: str = "postgres") -> str:
    """Name of an object bridge creates for `table` (trigger, function), validated."""
    _, bare = split_qualified(table, dialect)
    name = f"{prefix}{bare}{suffix}"
    limit = MAX_LENGTH.get(dialect, 63)
    if len(name) > limit:
        raise IdentifierError(
            f"table name {table!r} is too long: bridge needs to create {name!r}, "
            f"longer than the {limit} characters {dialect} allows; {SEE}"
        )
    return name
