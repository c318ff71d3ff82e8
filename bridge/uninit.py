"""`bridge uninit`: remove bridge's own tables and functions from a site database, the
inverse of `bridge init`, in one transaction. `--sql` runs the same code with a printing
sink (install.PrintSink), after the same checks.

It refuses what would lose data or break the application:
- capture triggers still installed on business tables: once bridge_outbox is gone, every
  write to those tables would fail. `remove_triggers` removes them in the same transaction.
- changes in the outbox not yet published: the other sites would never get them.
  `discard_unpublished` drops them anyway (the caller is told how many).
- a `bridge run` publishing from this database (the dispatcher lease), or a database that
  belongs to another site.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bridge import identifiers
from bridge.dialects.base import Dialect
from bridge.errors import BridgeError, DatabaseError, RefusedError, SchemaError, one_line
from bridge.install import Sink, installed_site, run, uninstall_statements

log = logging.getLogger(__name__)


@dataclass
class UninitReport:
    statements: int = 0
    triggers_removed: list[str] = field(default_factory=list)  # tables no longer captured
    unpublished_discarded: int = 0  # outbox changes that were never published


def captured_tables(dialect: Dialect, conn: Any) -> dict[str, str]:
    """Tables carrying bridge's capture triggers: their name as in 'tables' -> schema.table."""
    with conn.cursor() as cur:
        cur.execute(dialect.render("capture_installed"))
        return {str(name): str(qualified) for name, qualified in cur.fetchall()}


def uninit(
    dialect: Dialect,
    conn: Any,
    site: str,
    sink: Sink,
    execute: bool,
    remove_triggers: bool = False,
    discard_unpublished: bool = False,
) -> UninitReport:
    """Remove bridge from the database `conn` is connected to (see the module's doc).
    Raises RefusedError naming every reason to refuse and the flag or command for it."""
    report = UninitReport()
    with conn.transaction() if execute else contextlib.nullcontext(), _database_errors():
        owner = installed_site(dialect, conn)
        if owner is not None and owner != site:
            raise SchemaError(
                f"this database belongs to site {owner}, not {site}: check 'site' and "
                "'database_url' in the configuration"
            )
        outbox = _exists(dialect, conn, "bridge_outbox")
        problems = []
        if execute and not _guard(dialect, conn, outbox):
            problems.append(
                "a `bridge run` is publishing from this database (it holds the dispatcher "
                "lease): stop it first"
            )
        captured = captured_tables(dialect, conn)
        if captured and not remove_triggers:
            tables = " ".join(f"--table {t}" for t in captured)
            problems.append(
                f"capture triggers are still installed on {', '.join(captured)}: writes to "
                "them would fail once bridge_outbox is gone. Remove them first with "
                f"`bridge uninstall-triggers {tables}`, or add --remove-triggers to remove "
                "them in the same transaction"
            )
        unpublished = _unpublished(dialect, conn) if outbox else 0
        if unpublished and not discard_unpublished:
            problems.append(
                f"bridge_outbox holds {unpublished} change(s) not yet published: the other "
                "sites would never get them. Let `bridge run` publish them first (`bridge "
                "status` shows unpublished 0), or add --discard-unpublished to lose them"
            )
        if problems:
            raise RefusedError("not removing bridge: " + "; and ".join(problems))
        if unpublished:
            log.warning(
                "site=%s uninit: %d unpublished change(s) in bridge_outbox %s",
                site,
                unpublished,
                "discarded" if execute else "would be discarded",
            )
        exact = captured.values()  # schema-qualified: the very tables found
        statements = [s for t in exact for s in uninstall_statements(dialect, t, forget=False)]
        gone = {dialect.capture_function(t) for t in exact}
        functions = [f for f in _capture_functions(dialect, conn) if f not in gone]
        statements += dialect.statements("uninit", functions=functions)
        report.statements = run(conn, sink, statements, execute, dialect)
        report.triggers_removed = list(captured)
        report.unpublished_discarded = unpublished
    if execute:
        log.info(
            "site=%s bridge removed from the database (%d statements)", site, report.statements
        )
    return report


def _exists(dialect: Dialect, conn: Any, table: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(dialect.render("introspect_table"), {"table": table})
        row = cur.fetchone()
    return bool(row and row[0])


def _guard(dialect: Dialect, conn: Any, outbox: bool) -> bool:
    """Take the dispatcher lease for this transaction and lock the outbox; False if a
    dispatcher holds the lease."""
    free = True
    with conn.cursor() as cur:
        for stmt in dialect.statements("uninit_guard", outbox=outbox):
            cur.execute(stmt)
            if cur.description is not None:
                row = cur.fetchone()
                free = bool(row and row[0])
            if not free:
                return False
    return True


def _unpublished(dialect: Dialect, conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute(dialect.render("outbox_unpublished"))
        row = cur.fetchone()
    return int(row[0]) if row else 0


def _capture_functions(dialect: Dialect, conn: Any) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(dialect.render("capture_functions"))
        rows = cur.fetchall()
    q = dialect.sqlglot_name
    return [
        f"{identifiers.quote(s, q, 'schema')}.{identifiers.quote(n, q, 'function')}"
        for s, n in rows
    ]


@contextlib.contextmanager
def _database_errors() -> Iterator[None]:
    try:
        yield
    except BridgeError:
        raise
    except Exception as exc:  # the database refused: the transaction rolled back
        raise DatabaseError(f"uninit failed, nothing was removed: {one_line(exc)}") from exc
