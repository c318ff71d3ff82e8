"""Apply a batch of received events to the site database, exactly once each.

One transaction per batch, one savepoint per event. For a foreign event: record its id in
`bridge_inbox` (a redelivery is then a no-op), lock the local row, compare versions under
the table's conflict policy, write the row, record its version (tombstone for a delete).
The transaction is marked as bridge's own, so capture triggers do not capture it again.
For our own event coming back: drop it from the outbox and keep its version.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from bridge import codec, failpoints
from bridge.config import Config, TableConfig
from bridge.dialects.base import Dialect, TableInfo, close_quietly
from bridge.errors import DatabaseError, EventError
from bridge.event import Event

log = logging.getLogger(__name__)

APPLIED, DUPLICATE, SUPERSEDED, CONFLICT, ECHO, REJECTED = (
    "applied",
    "duplicate",
    "superseded",
    "conflict",
    "echo",
    "rejected",
)
Version = tuple[dt.datetime, str]
LOCK_RETRIES = 5  # a batch chosen as a deadlock victim this many times in a row: give up
REMOVED = "removed: a local change made while a delete of the row was applied here lost to it"
CONCURRENT = "lost to a local change made while it was applied here, neither seeing the other"


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str = ""


@dataclass(frozen=True)
class Statements:
    claim: str  # inbox insert + row lock
    lock: str  # row lock (a row that appeared since the claim)
    read: str  # the locked row, its version, its newest pending local change
    upsert: str  # overwrite the locked row + version
    insert: str  # insert an absent row, unless it appeared meanwhile
    confirm: str  # + version of an inserted row, unless what was decided on changed
    delete: str  # row + tombstone
    undo: str  # remove a row this apply inserted


# Each of the Statements, and the template (and its switches) it is rendered from.
TEMPLATES: dict[str, tuple[str, dict[str, bool]]] = {
    "claim": ("apply_lock", {"claim": True}),
    "lock": ("apply_lock", {"claim": False}),
    "read": ("apply_read", {}),
    "upsert": ("apply_upsert", {"new_row": False}),
    "insert": ("apply_upsert", {"new_row": True}),
    "confirm": ("apply_confirm", {}),
    "delete": ("apply_delete", {"tombstone": True}),
    "undo": ("apply_delete", {"tombstone": False}),
}


def statements(dialect: Dialect, info: TableInfo) -> Statements:
    """The statements that apply changes of one table."""
    return Statements(
        **{
            field: dialect.render(template, table=info.table, info=info, **switches)
            for field, (template, switches) in TEMPLATES.items()
        }
    )


@dataclass(frozen=True)
class _RowState:
    """What a change is decided on: the local row (None if absent), the row's last applied
    version (or echoed local one) and the newest local change of the row still in the
    outbox."""

    local_row: dict[str, Any] | None
    version: Version | None  # bridge_row_version's
    pending_ts: dt.datetime | None


class _Retry(Exception):
    """A statement failed inside the fast path: redo the batch with a savepoint per event."""


class Applier:
    """Applies events on one connection; `reconnect()` after the database comes back."""

    def __init__(self, config: Config, dialect: Any, connect_now: bool = True) -> None:
        self.config = config
        self.dialect: Any = dialect
        self.conn: Any = None
        self.tables: dict[str, tuple[TableConfig, TableInfo, Statements]] = {}
        if connect_now:
            self.reconnect()

    def reconnect(self) -> None:
        close_quietly(self.conn)
        self.conn = self.dialect.connect(self.config.database_url)
        self.tables = {}
        for table in self.config.tables:
            info = self.dialect.introspect(self.conn, table.name)
            self.tables[table.name] = (table, info, statements(self.dialect, info))
        self._sql = {
            name: self.dialect.render(name)
            for name in ("apply_begin", "inbox_insert", "conflict_insert", "outbox_delete")
        }

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def apply_batch(self, events: Sequence[Event]) -> list[Outcome]:
        """Apply events in one transaction. Raises DatabaseError if the database is gone
        (nothing of the batch is then committed: retry it after reconnect()).

        The fast path runs the batch without savepoints; if the database refuses one
        event, the batch is rolled back and run again with a savepoint per event, so that
        event alone is logged as a conflict."""
        if self.conn is None or self.conn.closed:
            self.reconnect()
        for attempt in range(1, LOCK_RETRIES + 1):
            try:
                try:
                    return self._run(events, savepoints=False)
                except _Retry:
                    return self._run(events, savepoints=True)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
                # an application's transaction locked rows of this batch in the opposite
                # order: PostgreSQL rolled one of the two back, here this batch; run it again
                log.info(
                    "site=%s batch of %d rolled back by the database (%s), attempt %d of %d",
                    self.config.site,
                    len(events),
                    type(exc).__name__,
                    attempt,
                    LOCK_RETRIES,
                )
                last: Exception = exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise DatabaseError(f"database connection lost while applying: {exc}") from exc
        raise DatabaseError(f"batch rolled back {LOCK_RETRIES} times in a row: {last}")

    def _run(self, events: Sequence[Event], savepoints: bool) -> list[Outcome]:
        outcomes: list[Outcome] = []
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(self._sql["apply_begin"])
            for event in events:
                outcomes.append(self._apply_guarded(cur, event, savepoints))
            failpoints.hit("apply.statements")
        return outcomes

    def _apply_guarded(self, cur: Any, event: Event, savepoint: bool) -> Outcome:
        try:
            if not savepoint:
                return self._apply_one(cur, event)
            with self.conn.transaction():
                return self._apply_one(cur, event)
        except EventError as exc:  # raised before any statement of this event ran
            return Outcome(REJECTED, str(exc))
        except (psycopg.IntegrityError, psycopg.DataError, psycopg.ProgrammingError) as exc:
            if not savepoint:
                raise _Retry() from exc
            # The row cannot be written here (a local constraint, a value out of range):
            # keep the event as a conflict so it is not retried forever, and go on.
            reason = f"cannot apply: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
            log.warning(
                "site=%s event=%s table=%s %s", self.config.site, event.id, event.table, reason
            )
            with self.conn.transaction():
                cur.execute(self._sql["inbox_insert"], {"id": event.id, "origin": event.origin})
                self._conflict(cur, event, reason, None, None)
            return Outcome(CONFLICT, reason)

    def _apply_one(self, cur: Any, event: Event) -> Outcome:
        version = {
            "table": event.table,
            "key": json.dumps(event.key, sort_keys=True),
            "ts": event.timestamp,
            "origin": event.origin,
            "deleted": event.op == "delete",
            "id": event.id,
        }
        if event.origin == self.config.site:
            cur.execute(self._sql["outbox_delete"], version)
            _published_at, deleted, ts, origin, event_id = cur.fetchone()
            if ts is not None and origin != event.origin:
                self._echo_after_remote(cur, event, (ts, origin), deleted, event_id)
            return Outcome(ECHO)
        entry = self.tables.get(event.table)
        if entry is None:
            raise EventError(f"table {event.table!r} is not in site {self.config.site}'s sync set")
        table, info, stmts = entry
        params = self._params(info, event)
        params.update(version)

        # Lock the row first, then read what to decide on in a statement of its own: a
        # local transaction that changed the row commits before the lock is granted, and
        # only a snapshot taken after that sees its outbox rows (read with the lock, in one
        # statement, they were missed and an older remote change overwrote a newer local
        # one: the sites diverged with no conflict logged).
        cur.execute(stmts.claim, params)
        fresh, present = cur.fetchone()
        if not fresh:
            return Outcome(DUPLICATE)
        while True:
            state = self._read(cur, stmts, params)
            if (state.local_row is not None) == present:
                outcome = self._decide(cur, table, info, stmts, event, params, state)
                if outcome is not None:
                    return outcome
            # the row appeared since it was locked (a local insert of its key committed
            # meanwhile): lock it, read again and decide against it
            cur.execute(stmts.lock, params)
            present = cur.fetchone()[1]

    @staticmethod
    def _read(cur: Any, stmts: Statements, params: dict[str, Any]) -> _RowState:
        cur.execute(stmts.read, params)
        local_row, version_ts, version_origin, pending_ts = cur.fetchone()
        version = (version_ts, version_origin) if version_ts is not None else None
        return _RowState(local_row, version, pending_ts)

    def _decide(
        self,
        cur: Any,
        table: TableConfig,
        info: TableInfo,
        stmts: Statements,
        event: Event,
        params: dict[str, Any],
        state: _RowState,
    ) -> Outcome | None:
        """Decide on a change of the locked (or absent) row and apply it. None: the row was
        absent and a local insert of its key committed before ours could be written."""
        known, local_row = state.version, state.local_row
        incoming: Version = (event.timestamp, event.origin)
        if known and known[1] == event.origin and incoming <= known:
            # An older change from the site whose later change of this row is already
            # applied: delivered late (RabbitMQ returns the unacknowledged messages of a
            # crashed consumer out of order). Not a conflict, and under every policy never
            # applied: a row is never rolled back to an earlier state of the same writer.
            return Outcome(SUPERSEDED)
        pending = False
        if state.pending_ts is not None and (
            known is None or (state.pending_ts, self.config.site) > known
        ):
            known, pending = (state.pending_ts, self.config.site), True

        lost = self._loses(table, info, event, incoming, known, pending, local_row)
        if lost:
            self._conflict(cur, event, lost, known, local_row)
            return Outcome(CONFLICT, lost)
        if event.op == "delete":
            cur.execute(stmts.delete, params)
        elif local_row is not None:
            cur.execute(stmts.upsert, params)
        elif not self._insert(cur, stmts, params, state):
            return None
        if pending:
            # a newer remote write replaced a local change that is still on its way out:
            # a true concurrent write, logged so the overwritten value stays visible
            self._conflict(cur, event, "overwrote a concurrent local change", known, local_row)
        return Outcome(APPLIED)

    @staticmethod
    def _insert(cur: Any, stmts: Statements, params: dict[str, Any], state: _RowState) -> bool:
        """Insert a row that was absent when the change was decided on. False, with nothing
        written, if a local transaction got in the way: one that inserted the key committed
        first (the row exists), or one that this insert waited for changed the row's
        pending changes (it inserted and deleted the key: no row, new outbox rows)."""
        cur.execute(stmts.insert, params)
        if cur.fetchone()[0] == 0:
            return False
        decided_ts, decided_origin = state.version if state.version else (None, None)
        cur.execute(
            stmts.confirm,
            {
                **params,
                "decided_ts": decided_ts,
                "decided_origin": decided_origin,
                "decided_pending": state.pending_ts,
            },
        )
        if cur.fetchone()[0]:
            return True
        cur.execute(stmts.undo, params)
        return False

    def _echo_after_remote(
        self, cur: Any, event: Event, remote: Version, deleted: bool, remote_id: str | None
    ) -> None:
        """Our change `event` came back; `remote` is the last remote change of its row
        applied here. A remote delete applied while the row was absent here (nothing to
        lock, nothing to wait for) can race a local insert of the key not yet committed:
        neither sees the other. The one stamped later wins at every other site; here the
        delete found no row and the insert's row stayed. If the delete is the later one
        (a clock behind the deleting site's), the row must go here too; if the insert is,
        the delete lost without being compared with anything: log it."""
        if not deleted:
            return  # an upsert is applied under the row's lock: never unseen
        if remote > (event.timestamp, event.origin):
            self._remove_lost_to_delete(cur, event, remote)
        elif "seen" in event.data and (event.seen is None or event.seen < remote[0]):
            lost = Event(
                str(remote_id),
                remote[0],
                remote[1],
                f"{event.table}.delete",
                {"table": event.table, "op": "delete", "key": event.key},
            )
            self._conflict(cur, lost, CONCURRENT, (event.timestamp, event.origin), None)

    def _remove_lost_to_delete(self, cur: Any, event: Event, tombstone: Version) -> None:
        """Remove the row of our change `event` that lost to a delete applied here at the
        same moment (see `_echo_after_remote`), unless a later local change of it is on
        its way out (stamped after the tombstone, that one wins everywhere)."""
        entry = self.tables.get(event.table)
        if entry is None or entry[0].policy == "none":
            return
        _table, info, stmts = entry
        params: dict[str, Any] = {c.param: None for c in info.columns}
        try:
            params.update((c.param, codec.decode_value(event.key[c.name], c.kind)) for c in info.pk)
        except (KeyError, ValueError, TypeError, ArithmeticError):
            return  # not a key of this table as it is now: nothing of it can be here
        params.update(
            table=event.table,
            key=json.dumps(event.key, sort_keys=True),
            ts=event.timestamp,
            origin=event.origin,
            deleted=True,
            id=event.id,
        )
        cur.execute(stmts.lock, params)
        state = self._read(cur, stmts, params)
        if state.local_row is None:
            return
        if state.pending_ts is not None and (state.pending_ts, self.config.site) > tombstone:
            return
        cur.execute(stmts.delete, params)  # its version is older: the tombstone stays
        self._conflict(cur, event, REMOVED, tombstone, state.local_row)

    def _params(self, info: TableInfo, event: Event) -> dict[str, Any]:
        source = event.key if event.op == "delete" else event.row
        assert source is not None
        unknown = set(source) - {c.name for c in info.columns}
        if unknown:
            raise EventError(f"unknown column(s) {sorted(unknown)} for table {event.table!r}")
        missing = [c.name for c in info.pk if c.name not in event.key]
        if missing:
            raise EventError(f"key lacks primary-key column(s) {missing} of {event.table!r}")
        needed = info.pk if event.op == "delete" else info.columns
        absent = [c.name for c in needed if c.name not in source]
        if absent:
            raise EventError(f"row lacks column(s) {absent} of {event.table!r}")
        params: dict[str, Any] = {}
        try:
            for c in needed:
                value = event.key[c.name] if c in info.pk else source[c.name]
                params[c.param] = codec.decode_value(value, c.kind)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise EventError(f"bad value in {event.table!r}: {exc}") from None
        for c in info.columns:
            params.setdefault(c.param, None)
        return params

    def _loses(
        self,
        table: TableConfig,
        info: TableInfo,
        event: Event,
        incoming: Version,
        known: Version | None,
        pending: bool,
        local_row: dict[str, Any] | None,
    ) -> str:
        """Why the incoming change must not be applied under the table's policy, or ''."""
        if table.policy == "none" or known is None:
            return ""
        if table.policy == "manual" and pending:
            return "manual policy: a local change of this row is still pending; resolve by hand"
        column = info.column(table.policy_column) if table.policy_column else None
        if column and event.op != "delete" and local_row is not None and event.row:
            mine = codec.decode_value(local_row.get(column.name), column.kind)
            theirs = codec.decode_value(event.row.get(column.name), column.kind)
            if mine is not None and theirs is not None and theirs <= mine:
                return f"older than the local row by {column.name} ({theirs} <= {mine})"
            return ""
        if incoming <= known:
            return (
                f"older than the local version ({_fmt(incoming)} <= {_fmt(known)}): "
                "last writer wins"
            )
        return ""

    def _conflict(
        self,
        cur: Any,
        event: Event,
        reason: str,
        known: Version | None,
        local_row: dict[str, Any] | None,
    ) -> None:
        log.info(
            "site=%s event=%s table=%s key=%s conflict: %s",
            self.config.site,
            event.id,
            event.table,
            event.key,
            reason,
        )
        cur.execute(
            self._sql["conflict_insert"],
            {
                "id": event.id,
                "table": event.table,
                "key": json.dumps(event.key, sort_keys=True),
                "reason": reason,
                "ts": event.timestamp,
                "origin": event.origin,
                "incoming": json.dumps(event.to_dict()),
                "local_ts": known[0] if known else None,
                "local_origin": known[1] if known else None,
                "local_row": json.dumps(local_row) if local_row is not None else None,
            },
        )


def _fmt(version: Version) -> str:
    return f"{version[0].isoformat()} {version[1]}"
