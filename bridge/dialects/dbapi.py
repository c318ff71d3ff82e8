"""A DB-API connection with the face bridge's core code uses (psycopg's): for the dialects
whose driver is a plain DB-API module (PyMySQL, pyodbc, oracledb).

What it adds to the driver's connection, and nothing else:

- `transaction()`, a context manager: the outermost one is a transaction (BEGIN ... COMMIT,
  ROLLBACK on an exception), a nested one a savepoint;
- `execute()` on the connection, returning the cursor, and cursors as context managers;
- a template of several statements (separated by `-- bridge:statement`, bridge/sql.py) runs
  them in turn, with the same parameters; the last one's rows are the ones read;
- parameters written `%(name)s` in every template, rewritten to the driver's style
  (`paramstyle`); a list parameter is bound as its JSON text (templates read it with the
  dialect's JSON functions: JSON_TABLE, OPENJSON);
- the driver's errors raised as the classes below, so the core tells a deadlock from a lost
  connection or a refused row whatever the driver (each dialect's `classify`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.dialects.base import Errors
from bridge.errors import ConfigError
from bridge.sql import split


class DbError(Exception):
    """A database error, whatever the driver (`__cause__` holds the driver's)."""


class Deadlock(DbError):
    """The database rolled the transaction back to break a deadlock or a lock wait: run it
    again."""


class ConnectionLost(DbError):
    """The connection is gone (server restarted, network cut): reconnect."""


class Unwritable(DbError):
    """The database refused a row (a constraint, a value out of range, a bad value)."""


class ForeignKeyViolation(Unwritable):
    """A row references one that is not there (or is still referenced)."""


class UniqueViolation(Unwritable):
    """A row's key or unique value exists already."""


@dataclass(frozen=True)
class ErrorNumbers:
    """A database's error numbers, by what bridge does about them: what each dialect's
    `classify` looks up first (then the driver's own exception classes)."""

    deadlock: frozenset[int]
    foreign_key: frozenset[int]
    unique: frozenset[int]
    unwritable: frozenset[int]
    lost: frozenset[int]

    def kind(self, code: int) -> type[DbError] | None:
        for numbers, cls in (
            (self.deadlock, Deadlock),
            (self.foreign_key, ForeignKeyViolation),
            (self.unique, UniqueViolation),
            (self.unwritable, Unwritable),
            (self.lost, ConnectionLost),
        ):
            if code in numbers:
                return cls
        return None


PARAM = re.compile(r"%\((\w+)\)s|%%")

Classify = Callable[[BaseException], type[DbError] | None]


class Described:
    """A column of a result, as psycopg describes it (`name`)."""

    def __init__(self, name: str) -> None:
        self.name = name


class Cursor:
    """Over the driver's cursor. A template of several statements keeps the rows of the
    last one that returned rows (the others: SET, SELECT ... INTO, DML)."""

    def __init__(self, owner: Connection, raw: Any) -> None:
        self.owner = owner
        self.raw = raw
        self._rows: list[tuple[Any, ...]] | None = None  # buffered (several statements)
        self._description: Any = None

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Cursor:
        statements = split(sql)
        self._rows, self._description = None, None
        for statement in statements:
            text, args = self.owner.bind(statement, params)
            self.owner.call(self.raw.execute, text, args)
            if len(statements) > 1 and self.raw.description is not None:
                self._description = self.raw.description
                self._rows = [tuple(r) for r in self.owner.call(self.raw.fetchall)]
        if len(statements) > 1 and self._rows is None:
            self._rows = []
        return self

    @property
    def description(self) -> list[Described] | None:
        described = self._description if self._rows is not None else self.raw.description
        return None if described is None else [Described(d[0]) for d in described]

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._rows is not None:
            return self.owner.row_filter(self._rows.pop(0)) if self._rows else None
        row = self.owner.call(self.raw.fetchone)
        return self.owner.row_filter(tuple(row)) if row is not None else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self._rows is not None:
            rows, self._rows = self._rows, []
        else:
            rows = [tuple(r) for r in self.owner.call(self.raw.fetchall) or ()]
        return [self.owner.row_filter(r) for r in rows]

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        if self._rows is not None:
            rows, self._rows = self._rows[:size], self._rows[size:]
        else:
            rows = [tuple(r) for r in self.owner.call(self.raw.fetchmany, size)]
        return [self.owner.row_filter(r) for r in rows]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self.raw.rowcount)


class Connection:
    """See the module's text. `raw`: the driver's connection, in autocommit mode."""

    def __init__(
        self,
        raw: Any,
        paramstyle: str,
        classify: Classify,
        begin: str | Callable[[Any], None] = "BEGIN",
        end: Callable[[Any], None] | None = None,
        savepoint: str = "SAVEPOINT {name}",
        release: str | None = "RELEASE SAVEPOINT {name}",
        rollback_to: str = "ROLLBACK TO SAVEPOINT {name}",
        server_cursor: Callable[[Any], Any] | None = None,
        row_filter: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None,
    ) -> None:
        self.raw = raw
        self.paramstyle = paramstyle
        self.classify = classify
        self._begin = begin
        self._end = end
        self._savepoint = savepoint
        self._release = release
        self._rollback_to = rollback_to
        self._server_cursor = server_cursor
        self.row_filter = row_filter or (lambda row: row)
        self._depth = 0
        self._closed = False

    # -- the psycopg face ----------------------------------------------------------------
    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            self.raw.close()

    def cursor(self, name: str | None = None) -> Cursor:
        """A cursor; `name` asks for one that streams rows from the server (verify)."""
        if name and self._server_cursor is not None:
            return Cursor(self, self.call(self._server_cursor, self.raw))
        return Cursor(self, self.call(self.raw.cursor))

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Cursor:
        return self.cursor().execute(sql, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        depth = self._depth
        name = f"bridge_sp{depth}"
        if depth == 0 and callable(self._begin):
            self.call(self._begin, self.raw)  # e.g. autocommit off (oracledb, pyodbc)
        elif depth == 0:
            self._statement(str(self._begin))
        else:
            self._statement(self._savepoint.format(name=name))
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth = depth
            with contextlib.suppress(DbError):  # a lost connection: nothing to roll back
                if depth == 0:
                    self.call(self.raw.rollback)
                    self._ended()
                else:
                    self._statement(self._rollback_to.format(name=name))
            raise
        self._depth = depth
        if depth == 0:
            self.call(self.raw.commit)
            self._ended()
        elif self._release:
            self._statement(self._release.format(name=name))

    def _ended(self) -> None:
        if self._end is not None:
            self.call(self._end, self.raw)

    # -- the driver ----------------------------------------------------------------------
    def _statement(self, sql: str) -> None:
        cur = self.call(self.raw.cursor)
        try:
            self.call(cur.execute, sql)
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a driver call, its errors raised as DbError's classes."""
        try:
            return fn(*args)
        except DbError:
            raise
        except Exception as exc:
            kind = self.classify(exc)
            if kind is None:
                raise
            if kind is ConnectionLost:
                self._closed = True
            raise kind(str(exc)) from exc

    def bind(self, sql: str, params: Mapping[str, Any] | None) -> tuple[str, Any]:
        """`%(name)s` parameters in the driver's style; lists as JSON text, aware datetimes
        as UTC. Without parameters the text goes as it is (a `%` in it is a `%`); with
        some, a literal `%` is written `%%`."""
        if not params:
            return sql, None
        values = {k: _param(v) for k, v in params.items()}
        if self.paramstyle == "pyformat":
            return sql, values
        order: list[str] = []

        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "%%":
                return "%"
            order.append(match.group(1))
            return "?" if self.paramstyle == "qmark" else f":{match.group(1)}"

        text = PARAM.sub(sub, sql)
        if self.paramstyle == "qmark":
            return text, [values[n] for n in order]
        return text, {n: values[n] for n in dict.fromkeys(order)}


def _param(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return json.dumps([_element(v) for v in value])
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _element(value: Any) -> Any:
    """An element of a list parameter, as JSON holds it: a datetime as its UTC text with six
    fractional digits (`2026-11-28 10:00:00.000000`), which every dialect's JSON_TABLE or
    OPENJSON reads back."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(" ", timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


# What a dialect whose connections are this module's raises, by what the core does about it
# (Dialect.errors).
ERRORS = Errors(
    any=(DbError,),
    deadlock=(Deadlock,),
    lost=(ConnectionLost,),
    unwritable=(Unwritable,),
    foreign_key=(ForeignKeyViolation,),
    unique=(UniqueViolation,),
)


def utc_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row_filter: bridge's own timestamp columns hold UTC without a zone (MariaDB's
    DATETIME, SQL Server's DATETIME2, Oracle's TIMESTAMP): read them as aware datetimes."""
    if any(isinstance(v, dt.datetime) and v.tzinfo is None for v in row):
        return tuple(
            v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) and v.tzinfo is None else v
            for v in row
        )
    return row


TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def driver_options(
    query: Mapping[str, Any], known: Mapping[str, type], driver: str
) -> dict[str, Any]:
    """The `known` parameters of database_url's query (TLS settings, docs/configuration.md
    "Database TLS") as the driver's keyword arguments, of their type (str or bool). A
    parameter that looks like TLS (ssl*, tls*, wallet*) but is not known is a ConfigError:
    left out silently, it would leave the connection unencrypted while the URL says
    otherwise."""
    options: dict[str, Any] = {}
    for key, raw in query.items():
        value = str(raw[-1] if isinstance(raw, tuple) else raw)
        kind = known.get(key)
        if kind is None:
            if key.lower().startswith(("ssl", "tls", "wallet")):
                raise ConfigError(
                    f"database_url's {key} is not a {driver} TLS parameter; use "
                    f'{", ".join(known)} (see "Database TLS" in docs/configuration.md)'
                )
            continue
        if kind is bool:
            if value.lower() not in TRUE + FALSE:
                raise ConfigError(f"database_url's {key} must be true or false, got {value!r}")
            options[key] = value.lower() in TRUE
        else:
            options[key] = value
    return options
