"""Install bridge's tables and capture triggers: the same code path for a real install and
for `--sql`, which only swaps the sink (alembic's offline mode).

Everything one command installs runs in one transaction: a missing table or a table
without a primary key is found before anything runs, and a failure rolls all of it back.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TextIO

from bridge import __version__, identifiers, offline, rowfilter
from bridge.dialects.base import Dialect, TableInfo, literal
from bridge.errors import ConfigError, DatabaseError, SchemaError, one_line
from bridge.event import MAX_PAYLOAD_BYTES

ALTERED_PREFIX = "bridge_altered_"  # the after-ALTER form of a capture function
NO_EVENT_TRIGGER = (
    "not a superuser: installed without the event trigger that keeps the application's "
    "writes working after an ALTER TABLE that drops or renames a column (PostgreSQL lets "
    "only a superuser create one); after such an ALTER, run bridge install-triggers at "
    "once (docs/operations.md), or run install-triggers once as a superuser"
)


class Sink(Protocol):
    def execute(self, statement: str) -> None: ...


class PrintSink:
    """Writes each statement, terminated as the dialect wants, for a DBA to review or run."""

    def __init__(self, dialect: Dialect, out: TextIO) -> None:
        self.dialect = dialect
        self.out = out

    def execute(self, statement: str) -> None:
        self.out.write(self.dialect.printed(statement) + "\n\n")


class ConnectionSink:
    """Executes each statement on a connection (inside the caller's transaction)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, statement: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(statement)


def init_statements(dialect: Dialect, site: str) -> list[str]:
    return dialect.statements("init", site_literal=literal(site), max_payload=MAX_PAYLOAD_BYTES)


def trigger_statements(
    dialect: Dialect,
    info: TableInfo,
    event_trigger: bool = True,
    bridge_schema: str = "public",
    clock: str | None = None,
    row_filter: rowfilter.RowFilter | None = None,
) -> list[str]:
    """The capture function and triggers of a table; with `event_trigger` (needs a
    superuser), the event trigger that keeps writes working after an ALTER TABLE.
    `bridge_schema`: where bridge's tables are (the capture names them with it, since it
    runs under the application's search_path: `bridge_schema()`). `clock`: what changes
    are stamped with (the dialect's clock; tests render one of their own,
    tests/integration/test_apply_property.py). `row_filter`: capture only the rows it
    passes (`--where`; None: every row)."""
    return dialect.statements(
        "capture_install",
        table=info.table,
        info=info,
        function=dialect.capture_function(info.table.name),
        altered_function=dialect.capture_function(info.table.name, ALTERED_PREFIX),
        version=__version__,
        columns_hash=info.columns_hash,
        event_trigger=event_trigger,
        bridge=identifiers.quote(bridge_schema, dialect.sqlglot_name, "schema")
        if bridge_schema
        else "",
        clock=clock or dialect.capture_clock,
        row_filter=row_filter,
        **dialect.capture_context(info.table.name),
    )


def uninstall_statements(dialect: Dialect, table: str, forget: bool = True) -> list[str]:
    """Remove a table's capture; `forget` also removes its entry in bridge_meta (not needed
    when bridge_meta is dropped next, by uninit)."""
    return dialect.statements(
        "capture_uninstall",
        table=dialect.table_ref(table),
        function=dialect.capture_function(table),
        forget=forget,
        altered_function=dialect.capture_function(table, ALTERED_PREFIX),
        **dialect.capture_context(table),
    )


def is_superuser(dialect: Dialect, conn: Any) -> bool:
    with conn.cursor() as cur:
        cur.execute(dialect.render("is_superuser"))
        row = cur.fetchone()
    return bool(row and row[0])


def run(
    conn: Any,
    sink: Sink,
    statements: Iterable[str],
    execute: bool,
    dialect: Dialect | None = None,
) -> int:
    """Send statements to the sink; when executing, all in one transaction (where the
    database's DDL is transactional: MariaDB commits each DDL statement)."""
    count = 0
    if not execute:
        for stmt in statements:
            sink.execute(stmt)
            count += 1
        return count
    transactional = dialect is None or dialect.transactional_ddl
    try:
        # (a database whose DDL commits runs them one by one: a savepoint around them
        # would be gone by the time it is released)
        with conn.transaction() if transactional else contextlib.nullcontext():
            for stmt in statements:
                sink.execute(stmt)
                count += 1
    except Exception as exc:  # the database refused: nothing of it stays
        if isinstance(exc, SchemaError | DatabaseError):
            raise
        if dialect is not None and not dialect.transactional_ddl:
            raise DatabaseError(
                f"statement {count + 1} failed: {one_line(exc)}; the {count} before it ran "
                f"({dialect.title} commits each DDL statement): fix the cause and run the "
                "command again, which replaces what it created"
            ) from exc
        raise DatabaseError(
            f"statement {count + 1} failed, nothing was changed: {one_line(exc)}"
        ) from exc
    return count


def bridge_schema(dialect: Dialect, conn: Any) -> str:
    """The schema of bridge's tables: where bridge's connection finds them, else (not
    initialised yet) where `bridge init` creates them, the first schema of its search path.
    SchemaError if bridge's tables exist only in schemas that search path does not reach
    (bridge's connections do not take the role's or database's search_path: docs/
    configuration.md, "Search path")."""
    with conn.cursor() as cur:
        cur.execute(dialect.render("bridge_schema"))
        found, default, elsewhere = cur.fetchone()
    if found is None and elsewhere:
        raise SchemaError(
            f"bridge's tables are in schema {', '.join(elsewhere)}, which bridge's search "
            f"path ({default or 'no schema'} first) does not reach: add "
            f'?search_path={elsewhere[0]} to database_url (see "Search path" in '
            "docs/configuration.md)"
        )
    if found is None and default is None:
        raise SchemaError(
            "no schema of bridge's search path exists in this database: create one, or "
            'name one with ?search_path= in database_url (see "Search path" in '
            "docs/configuration.md)"
        )
    return str(found or default)


def installed_site(dialect: Dialect, conn: Any) -> str | None:
    """The site name recorded by `bridge init`, or None if bridge is not initialised
    (SchemaError if its tables are out of reach: bridge_schema)."""
    with conn.cursor() as cur:
        cur.execute(dialect.render("bridge_schema"))
        found, _default, elsewhere = cur.fetchone()
        if found is None:
            if elsewhere:
                bridge_schema(dialect, conn)  # raises, saying where they are
            return None
        cur.execute(dialect.render("meta_get"), {"key": "site"})
        value = cur.fetchone()
    return str(value[0]) if value else None


def require_initialised(dialect: Dialect, conn: Any, site: str) -> None:
    """SchemaError unless `bridge init` ran in this database for `site`."""
    owner = installed_site(dialect, conn)
    if owner is None:
        raise SchemaError("bridge is not initialised in this database: run `bridge init`")
    if owner != site:
        raise SchemaError(
            f"this database belongs to site {owner}, not {site}: check 'site' and 'database_url'"
        )


def require_current(dialect: Dialect, conn: Any) -> None:
    """SchemaError unless bridge's tables have what this version needs."""
    row = conn.execute(dialect.render("schema_current")).fetchone()
    if not row or not row[0]:
        raise SchemaError(
            "bridge's tables in this database are those of an earlier version: run "
            '`bridge init` again (it keeps every row; see "Upgrading bridge at a site" '
            "in docs/operations.md)"
        )


def init(dialect: Dialect, conn: Any, site: str, sink: Sink, execute: bool) -> int:
    if execute:
        current = installed_site(dialect, conn)
        if current is not None and current != site:
            raise SchemaError(
                f"this database was initialised for site {current}, not {site}: check "
                "'site' and 'database_url' in the configuration"
            )
    return run(conn, sink, init_statements(dialect, site), execute, dialect)


def describe(dialect: Dialect, conn: Any, tables: Iterable[str]) -> list[TableInfo]:
    """Introspect every table first, so a bad one stops the install before anything runs."""
    return [dialect.introspect(conn, t) for t in tables]


def install_triggers(
    dialect: Dialect,
    conn: Any,
    tables: Iterable[str],
    sink: Sink,
    execute: bool,
    warn: Callable[[str], None] | None = None,
    where: str | None = None,
) -> list[TableInfo]:
    """Install the capture of `tables`. Without superuser rights the event trigger is left
    out (`warn` is told why); everything else is installed. `where`: the row filter of the
    one table named (`--where`; blank removes it); None keeps the one installed, if any."""
    infos = describe(dialect, conn, tables)
    if execute and installed_site(dialect, conn) is None:
        raise SchemaError("bridge is not initialised in this database: run `bridge init` first")
    # without --where, each table keeps the filter it was installed with (none before init)
    keep = where is None and installed_site(dialect, conn) is not None
    filters = [
        row_filter(
            dialect, info, where, installed_filter(dialect, conn, info.table.name) if keep else None
        )
        for info in one_filtered(infos, where)
    ]
    superuser = dialect.has_event_trigger and is_superuser(dialect, conn)
    if dialect.has_event_trigger and not superuser and warn is not None:
        warn(NO_EVENT_TRIGGER)
    schema = bridge_schema(dialect, conn)
    statements = (
        s
        for n, (info, kept) in enumerate(zip(infos, filters, strict=True))
        # the event trigger is one per database: once is enough
        for s in trigger_statements(
            dialect,
            info,
            event_trigger=superuser and n == 0,
            bridge_schema=schema,
            row_filter=kept,
        )
    )
    run(conn, sink, statements, execute, dialect)
    return infos


def one_filtered(infos: list[TableInfo], where: str | None) -> list[TableInfo]:
    """`infos`, unless a row filter is given for more than one table (ConfigError): a
    condition names one table's columns."""
    if where is not None and len(infos) != 1:
        raise ConfigError(
            f"--where filters the rows of one table, and {len(infos)} are named: run "
            "install-triggers once per table, each with its --table and --where"
        )
    return infos


def row_filter(
    dialect: Dialect, info: TableInfo, where: str | None, installed: str | None
) -> rowfilter.RowFilter | None:
    """The row filter a table's capture is generated with: `where` when given (`--where`;
    blank: none), else the one installed before (`installed`, from bridge_meta), checked
    again against the table's current columns."""
    text = installed if where is None else where
    if text is None or not text.strip():
        return None
    try:
        return rowfilter.for_table(dialect, info, text)
    except ConfigError as exc:
        if where is not None:
            raise
        raise ConfigError(
            f"the row filter installed for {info.table.name} no longer fits the table: "
            f"{exc}. Give install-triggers --where with a condition over its current "
            "columns, or --where '' to capture every row"
        ) from None


def offline_triggers(
    dialect: Dialect,
    ddl: str,
    tables: Iterable[str],
    sink: Sink,
    bridge_schema: str | None = None,
    where: str | None = None,
) -> list[TableInfo]:
    """`install-triggers --sql --ddl FILE`: the same statements as `install_triggers`, for
    tables described by their CREATE TABLE text instead of a live database (nothing is
    connected to). bridge's tables are named with `bridge_schema` (the dialect's default:
    `public` for PostgreSQL, none elsewhere, where the triggers then find them in the
    table's own database or schema); PostgreSQL's event trigger, which needs a superuser
    and depends on the server, is left out. `where`: the row filter of the one table named
    (no filter is installed to keep: there is no database to read it from)."""
    infos = one_filtered([offline.table_from_ddl(dialect, ddl, t) for t in tables], where)
    filters = [row_filter(dialect, info, where, None) for info in infos]
    schema = bridge_schema if bridge_schema is not None else dialect.default_bridge_schema
    for info, kept in zip(infos, filters, strict=True):
        for statement in trigger_statements(
            dialect, info, event_trigger=False, bridge_schema=schema, row_filter=kept
        ):
            sink.execute(statement)
    return infos


def uninstall_triggers(
    dialect: Dialect, conn: Any, tables: Iterable[str], sink: Sink, execute: bool
) -> int:
    return run(
        conn, sink, (s for t in tables for s in uninstall_statements(dialect, t)), execute, dialect
    )


def drift(dialect: Dialect, conn: Any, tables: Iterable[str]) -> dict[str, str]:
    """Tables whose capture trigger is missing or was generated for other columns."""
    problems: dict[str, str] = {}
    for table in tables:
        info = dialect.introspect(conn, table)
        meta = trigger_meta(dialect, conn, table)
        if meta is None:
            problems[table] = "no capture trigger installed: run bridge install-triggers"
            continue
        if meta.get("columns_hash") != info.columns_hash:
            problems[table] = (
                "columns changed since the trigger was installed: run bridge install-triggers "
                f"--table {table} again"
            )
        elif capture_altered(dialect, conn, table):
            problems[table] = (
                "altered since the trigger was installed (the capture runs its after-ALTER "
                "form, which sends JSON null as SQL NULL and -0 as 0): run bridge "
                f"install-triggers --table {table} again"
            )
    return problems


def meta_get(dialect: Dialect, cur: Any, key: str) -> Any:
    """The JSON value bridge_meta holds under `key` (None if none). Drivers give it parsed
    (PostgreSQL), as JSON text, or a string unquoted (meta_get of MariaDB and Oracle)."""
    cur.execute(dialect.render("meta_get"), {"key": key})
    row = cur.fetchone()
    if row is None or row[0] is None:
        return None
    value = row[0]
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # a string, unquoted


def meta_put(dialect: Dialect, cur: Any, key: str, value: Any) -> None:
    """Set bridge_meta's entry `key` to `value` (as JSON), replacing what it held."""
    cur.execute(dialect.render("meta_put"), {"key": key, "value": json.dumps(value)})


def trigger_meta(dialect: Dialect, conn: Any, table: str) -> dict[str, Any] | None:
    """What bridge_meta records of a table's capture (`version`, `columns_hash`, and
    `row_filter` if it has one), or None if none is installed."""
    with conn.cursor() as cur:
        meta = meta_get(dialect, cur, f"trigger:{table}")
    return None if meta is None else dict(meta)


def installed_filter(dialect: Dialect, conn: Any, table: str) -> str | None:
    """The row filter a table's capture was installed with (`--where`), or None."""
    meta = trigger_meta(dialect, conn, table)
    text = meta.get("row_filter") if meta else None
    return str(text) if text else None


def capture_altered(dialect: Dialect, conn: Any, table: str) -> bool:
    """Whether the event trigger swapped in the after-ALTER form of the table's capture."""
    with conn.cursor() as cur:
        cur.execute(
            dialect.render("capture_state"),
            {
                "capture": dialect.capture_function(table) + "()",
                "altered": dialect.capture_function(table, ALTERED_PREFIX) + "()",
            },
        )
        row = cur.fetchone()
    return bool(row and row[0])
