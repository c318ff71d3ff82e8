"""What every dialect provides, and the table description the templates are rendered from.

A dialect is a small class whose attributes state its differences plainly (how statements
are terminated when printed, whether DDL is transactional) plus the few hooks that differ:
connecting, introspecting a table, mapping a column type to a codec kind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from bridge import codec, identifiers, sql
from bridge.errors import SchemaError


def close_quietly(conn: Any) -> None:
    """Close a connection that may already be broken."""
    if conn is None:
        return
    with contextlib.suppress(Exception):
        conn.close()


def literal(text: str) -> str:
    """A SQL string literal (standard quoting) for a value bridge itself controls."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Column:
    name: str
    ref: str  # quoted identifier
    literal: str  # the name as a SQL string literal (JSON key)
    kind: str  # bridge.codec kind
    sql_type: str  # type as the database spells it
    param: str  # bind parameter name used in apply statements (stable across ALTERs)
    base_type: str = ""  # the type under a domain, as the database names it
    identity_always: bool = False  # GENERATED ALWAYS AS IDENTITY: written only on insert


@dataclass(frozen=True)
class TableRef:
    """A business table as the templates see it (names validated and quoted)."""

    name: str
    ref: str
    literal: str
    type_insert: str
    type_update: str
    type_delete: str
    meta_key: str


@dataclass(frozen=True)
class TableInfo:
    table: TableRef
    columns: tuple[Column, ...]
    pk: tuple[Column, ...]
    non_pk: tuple[Column, ...] = field(default=())
    identity_always: bool = False  # a GENERATED ALWAYS identity column needs an override
    # generated columns: never captured as theirs nor written (each site computes them);
    # a value for one in an event is ignored
    generated: tuple[str, ...] = field(default=())
    # a DEFERRABLE primary key (lets an application swap or shift keys in one statement):
    # not an ON CONFLICT arbiter, so apply updates and inserts it otherwise
    pk_deferrable: bool = False

    @property
    def json_text(self) -> tuple[Column, ...]:
        """The JSON columns whose documents the capture sends as text (`json_text`)."""
        return tuple(c for c in self.columns if c.kind == "json")

    @property
    def columns_hash(self) -> str:
        text = "|".join(
            f"{c.name}:{c.sql_type}:{'pk' if c in self.pk else ''}" for c in self.columns
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None


@dataclass(frozen=True)
class Errors:
    """The exception classes a dialect's connections raise, by what the core does about
    them (each a tuple, for `except`)."""

    any: tuple[type[BaseException], ...]  # every database error
    deadlock: tuple[type[BaseException], ...]  # rolled back to break a deadlock: run again
    lost: tuple[type[BaseException], ...]  # the connection is gone: reconnect
    unwritable: tuple[type[BaseException], ...]  # a row refused (constraint, bad value)
    foreign_key: tuple[type[BaseException], ...]  # a row references one not here (yet)
    unique: tuple[type[BaseException], ...]  # a key that exists already


class Dialect:
    """Base of the per-dialect classes in this package."""

    name: str = ""  # directory under sql_templates/
    sqlglot_name: str = ""  # dialect name for sqlglot (quoting, parsing)
    title: str = ""  # the database's name, for messages
    terminator: str = ";"  # printed after each statement by --sql
    batch_separator: str = ""  # printed on its own line after a statement (GO, /)
    transactional_ddl: bool = True
    # how the dispatcher learns of new outbox rows: a notification it waits for
    # (PostgreSQL's LISTEN/NOTIFY), or reading the outbox every `idle_poll` seconds
    wakes_on_notify: bool = False
    idle_poll: float = 0.05
    # runs of events applied by one statement per table (bridge/bulk.py): PostgreSQL's
    # arrays; the other dialects apply event by event
    set_based_apply: bool = False
    # an insert of a row absent when decided on skips it if a row of its key appeared
    # meanwhile (ON CONFLICT (key) DO NOTHING, and only for the key); else it fails with a
    # unique violation, in a savepoint, and the change is decided on again
    insert_skips_existing: bool = False
    # an event trigger that keeps the capture working after an ALTER TABLE (PostgreSQL,
    # as a superuser): without one, install-triggers says what to do after an ALTER
    has_event_trigger: bool = False
    # whether the capture templates take a row filter (`install-triggers --where`,
    # bridge/rowfilter.py); a dialect without refuses one
    row_filters: bool = False
    errors: Errors
    capture_clock: str = ""  # what the capture stamps changes with
    # where bridge's tables are in a script rendered offline (`--sql --ddl`): "" leaves
    # them unqualified
    default_bridge_schema: str = ""

    def capture_context(self, table: str) -> dict[str, Any]:
        """What the capture templates of `table` name besides the table (its triggers)."""
        return {}

    def printed(self, statement: str) -> str:
        """A statement as `--sql` prints it: terminated, then the batch separator if any."""
        text = statement.rstrip()
        if self.terminator and not text.endswith(self.terminator):
            text += self.terminator
        if self.batch_separator:
            text += "\n" + self.batch_separator
        return text

    # row keys are compared as JSON documents (PostgreSQL's jsonb): any text of a key
    # finds its versions, so the event's own (computed once per event) serves
    key_as_json: bool = False

    def key_text(self, key: dict[str, Any]) -> str:
        """A row key as bridge_row_version and the outbox's key lookup hold it: the JSON
        text the capture writes (keys sorted). PostgreSQL compares jsonb, so any spacing
        does; a dialect that compares text overrides this with its capture's exact text."""
        return json.dumps(key, sort_keys=True)

    def bind_structured(self, value: Any) -> Any:
        """An array or composite in its JSON form, as a bind value (see `is_json`)."""
        return codec.dumps(value)

    def is_json(self, value: Any) -> bool:
        """Whether a bind value is one the statement converts from JSON (PostgreSQL's
        jsonb_to_record), not from text: the statement is rendered for that form."""
        return False

    def render(self, template: str, **context: Any) -> str:
        return sql.render(self.name, template, **context)

    def statements(self, template: str, **context: Any) -> list[str]:
        return sql.statements(self.name, template, **context)

    def stored_name(self, name: str) -> str:
        """The name (table or schema.table) as the database's catalog holds it, for a name
        as events and 'tables' write it: the same, but in Oracle (OracleDialect)."""
        return name

    def table_ref(self, name: str) -> TableRef:
        quoted = identifiers.quote_qualified(self.stored_name(name), self.sqlglot_name)
        return TableRef(
            name=name,
            ref=quoted,
            literal=literal(name),
            type_insert=literal(f"{name}.insert"),
            type_update=literal(f"{name}.update"),
            type_delete=literal(f"{name}.delete"),
            meta_key=literal(f"trigger:{name}"),
        )

    def column(
        self,
        index: int,
        name: str,
        sql_type: str,
        base_type: str,
        category: str = "",
        identity_always: bool = False,
    ) -> Column:
        """A column; `index` names its bind parameter: give a number that an ALTER of
        other columns does not change (PostgreSQL's attnum)."""
        return Column(
            name=name,
            ref=identifiers.quote(name, self.sqlglot_name),
            literal=literal(name),
            kind=self.kind_of(base_type, category),
            sql_type=sql_type,
            param=f"p{index}",
            base_type=base_type,
            identity_always=identity_always,
        )

    def described(
        self,
        table: str,
        columns: tuple[Column, ...],
        pk: tuple[Column, ...],
        generated: tuple[str, ...] = (),
        pk_deferrable: bool = False,
    ) -> TableInfo:
        """A table as introspection found it; SchemaError if it has no primary key."""
        ref = self.table_ref(table)
        if not pk:
            raise SchemaError(
                f"table {table!r} has no primary key: bridge identifies rows by it; add one "
                f"(ALTER TABLE {ref.ref} ADD PRIMARY KEY (...)) and run install-triggers again"
            )
        return TableInfo(
            table=ref,
            columns=columns,
            pk=pk,
            non_pk=tuple(c for c in columns if c not in pk),
            identity_always=any(c.identity_always for c in columns),
            generated=generated,
            pk_deferrable=pk_deferrable,
        )

    def connect(self, url: str, autocommit: bool = True) -> Any:
        """A DB-API connection (autocommit; transactions are explicit blocks)."""
        raise NotImplementedError

    def introspect(self, conn: Any, table: str) -> TableInfo:
        """Describe a business table; SchemaError if missing or without primary key."""
        raise NotImplementedError

    def kind_of(self, base_type: str, category: str = "") -> str:
        raise NotImplementedError

    def capture_function(self, table: str, prefix: str = "bridge_capture_") -> str:
        raise NotImplementedError
