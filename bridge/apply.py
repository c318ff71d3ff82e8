"""Apply a batch of received events to the site database, exactly once each.

One transaction per batch, one savepoint per event. For a foreign event: record its id in
`bridge_inbox` (a redelivery is then a no-op), lock the local row, compare versions under
the table's conflict policy, write the row, record its version (tombstone for a delete).
The transaction is marked as bridge's own, so capture triggers do not capture it again.
For our own event coming back: drop it from the outbox and keep its version.
A foreign event that references a row not here yet (a child whose parent's insert has not
arrived) waits in `bridge_waiting` and is tried again after each batch.

Values go into the database as text that the column type's input parses (bridge/codec.py),
in statements rendered per table and per set of columns an event carries: a site that has
not added a column yet sends rows without it, which get the column's DEFAULT here. Each
batch first checks whether a synced table's columns changed (an ALTER TABLE here) and
describes it again if so; an event with a column the table lacks makes the Applier
describe the table again before it refuses the event.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge import codec, failpoints
from bridge import event as events
from bridge.bulk import Bulk
from bridge.cleanup import cleanup_horizon
from bridge.config import Config, TableConfig
from bridge.decision import (
    APPLIED,
    CONFLICT,
    DUPLICATE,
    ECHO,
    REJECTED,
    SUPERSEDED,
    WAITING,
    Outcome,
    RowState,
    Verdict,
    Version,
)
from bridge.dialects.base import Column, Dialect, TableInfo, close_quietly, literal
from bridge.errors import DatabaseError, EventError, SchemaError, one_line
from bridge.event import Event
from bridge.progress import QueueProgress

log = logging.getLogger(__name__)

_PROBE_ID = "00000000-0000-0000-0000-000000000000"  # names no event: row_states reads only
LOCK_RETRIES = 5  # a batch chosen as a deadlock victim this many times in a row: give up
MAX_CACHED_UPSERTS = 256  # statements per (table, columns carried): a handful in practice
WAITING_PER_BATCH = 100  # waiting events tried again after each batch, oldest first
REMOVED = "removed: a local change made while a delete of the row was applied here lost to it"
CONCURRENT = "lost to a local change made while it was applied here, neither seeing the other"


@dataclass(frozen=True)
class Statements:
    claim: str  # inbox insert + row lock
    lock: str  # row lock (a row that appeared since the claim)
    read: str  # the locked row, its version, its newest pending local change
    upsert: str  # overwrite the locked row + version (every column carried as text)
    insert: str  # insert an absent row unless it appeared meanwhile (every column, text)
    confirm: str  # + version of an inserted row, unless what was decided on changed
    delete: str  # the locked row + tombstone
    tombstone: str  # tombstone of a row that was absent
    undo: str  # remove a row this apply inserted


# Each of the Statements, and the template (and its switches) it is rendered from; the
# upsert and insert of an event that carries other columns, or values in their JSON form,
# are rendered for it (Applier._write).
TEMPLATES: dict[str, tuple[str, dict[str, bool]]] = {
    "claim": ("apply_lock", {"claim": True}),
    "lock": ("apply_lock", {"claim": False}),
    "read": ("apply_read", {}),
    "upsert": ("apply_upsert", {"new_row": False}),
    "insert": ("apply_upsert", {"new_row": True}),
    "confirm": ("apply_confirm", {}),
    "delete": ("apply_delete", {"tombstone": True, "remove": True}),
    "tombstone": ("apply_delete", {"tombstone": True, "remove": False}),
    "undo": ("apply_delete", {"tombstone": False, "remove": True}),
}


def statements(dialect: Dialect, info: TableInfo) -> Statements:
    """The statements that apply changes of one table."""
    every = [(c, "text") for c in info.columns]
    return Statements(
        **{
            field: dialect.render(template, table=info.table, info=info, present=every, **switches)
            for field, (template, switches) in TEMPLATES.items()
        }
    )


class _Retry(Exception):
    """A statement failed inside the fast path: redo the batch with a savepoint per event."""


class Applier:
    """Applies events on one connection; `reconnect()` after the database comes back."""

    def __init__(
        self,
        config: Config,
        dialect: Any,
        connect_now: bool = True,
        progress: QueueProgress | None = None,
        set_based: bool = True,
    ) -> None:
        self.config = config
        # runs of events applied set-based (bridge/bulk.py); False: every event alone, as
        # before it existed (the baseline of bench/apply.py)
        self.set_based = set_based
        self.dialect: Any = dialect
        self.errors = dialect.errors  # what the database raises, by what is done about it
        self.conn: Any = None
        self.tables: dict[str, tuple[TableConfig, TableInfo, Statements]] = {}
        self.progress = progress  # told how far the echoes of a committed batch reach
        self._echoed: dt.datetime | None = None
        self._waiting = False  # events were waiting when the batch began
        # events of earlier batches that stopped waiting in the last batch (applied, or
        # decided on otherwise), with what became of them: acknowledged with it (bridge/acks.py)
        self.waited: list[tuple[Event, Outcome]] = []
        if connect_now:
            self.reconnect()

    def reconnect(self) -> None:
        close_quietly(self.conn)
        self.conn = self.dialect.connect(self.config.database_url)
        self.tables = {}
        self._fingerprints: dict[str, str | None] = {}
        self._upserts: dict[tuple[str, bool, tuple[tuple[str, str], ...]], str] = {}
        self._compare: dict[tuple[str, str, str], str] = {}
        self._sql = {
            name: self.dialect.render(name)
            for name in (
                "inbox_insert",
                "conflict_insert",
                "outbox_delete",
                "waiting_put",
                "waiting_fetch",
                "waiting_done",
                "clock",
                "apply_name",
            )
        }
        self._bulk = Bulk(self)
        self._sql["immediate"] = self.dialect.render("apply_constraints", deferred=False)
        self._sql["deferred"] = self.dialect.render("apply_constraints", deferred=True)
        refs = [literal(self.dialect.table_ref(t.name).ref) for t in self.config.tables]
        names = [literal(t.name) for t in self.config.tables]
        self._sql["apply_begin"] = self.dialect.render("apply_begin", tables=refs, names=names)
        with self.conn.transaction(), self.conn.cursor() as cur:
            self._begin(cur)  # describes every table

    def _begin(self, cur: Any) -> None:
        """Start an apply transaction; describe again each table whose columns changed
        since it was described (the first time: every table)."""
        cur.execute(self._sql["immediate"])
        cur.execute(self._sql["apply_begin"])
        row = cur.fetchone()
        self._waiting = bool(row[-2])
        fingerprints = row[-1] if not isinstance(row[-1], str) else json.loads(row[-1])
        for table, fingerprint in zip(self.config.tables, fingerprints, strict=True):
            if table.name in self._fingerprints and self._fingerprints[table.name] == fingerprint:
                continue
            if table.name in self.tables:
                log.info(
                    "site=%s table=%s its columns changed: described again",
                    self.config.site,
                    table.name,
                )
            self._fingerprints[table.name] = fingerprint
            self._describe(table, first=table.name not in self.tables)

    def _describe(self, table: TableConfig, first: bool = False) -> TableInfo | None:
        """(Re)read a table's columns and render its statements. A table that is gone keeps
        its statements (they fail, and the events are logged as conflicts), except when
        starting, where it is an error (SchemaError)."""
        try:
            info: TableInfo = self.dialect.introspect(self.conn, table.name)
        except SchemaError as exc:
            if first:
                raise
            log.warning("site=%s table=%s %s", self.config.site, table.name, exc)
            return None
        self.tables[table.name] = (table, info, statements(self.dialect, info))
        self._bulk.forget(table.name)
        self._upserts = {k: v for k, v in self._upserts.items() if k[0] != table.name}
        return info

    def _write(self, event: Event, params: dict[str, Any], new_row: bool) -> str:
        """The upsert (`new_row`: the insert) of an event for the columns it carries, in
        the forms their values have (see _bind): the table's own statement when it carries
        every column as text, else one rendered for it."""
        _table, info, stmts = self.tables[event.table]
        present = [
            (c, "json" if self.dialect.is_json(params[c.param]) else "text")
            for c in info.columns
            if c.param in params
        ]
        if len(present) == len(info.columns) and all(form == "text" for _, form in present):
            return stmts.insert if new_row else stmts.upsert
        key = (event.table, new_row, tuple((c.param, form) for c, form in present))
        statement = self._upserts.get(key)
        if statement is None:
            if len(self._upserts) >= MAX_CACHED_UPSERTS:
                self._upserts.clear()
            statement = self.dialect.render(
                "apply_upsert", table=info.table, info=info, present=present, new_row=new_row
            )
            self._upserts[key] = statement
        return statement

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def write_copied(self, copied: Sequence[Event], then: tuple[str, dict[str, Any]]) -> None:
        """Write rows copied from another site's snapshot (bridge/bootstrap.py): an insert
        event is a row to write, a delete event a tombstone to keep (and a row of its key
        to remove), each stamped with the version (timestamp, origin) the row has there,
        its id the version's event id ('' for none). Set-based where the dialect can (one
        statement per chunk), else row by row through the applier's statements (an update
        writes the version with the row; an insert does not: the tombstone's statement,
        with deleted false, records it). One transaction marked as bridge's own (the
        capture does not take it), with `then` (a statement and its parameters: how far
        the copy got) in it too, so what is recorded as copied is what was committed.
        Nothing is decided on: a site being bootstrapped has no other writer of its synced
        tables yet (its bridge is not running); a row already here is overwritten, a
        newer version kept."""
        if self.conn is None or self.conn.closed:
            self.reconnect()
        with self.conn.transaction(), self.conn.cursor() as cur:
            self._begin(cur)
            rows: dict[str, list[tuple[Event, dict[str, Any]]]] = {}  # per table
            for event in copied:
                _table, info, stmts = self.tables[event.table]
                params = self._params(info, event)
                params.update(self._version_params(event), id=event.id or None)
                if event.op == "delete":
                    # a row copied by an earlier run, from an older snapshot, goes too
                    cur.execute(stmts.delete, params)
                else:
                    rows.setdefault(event.table, []).append((event, params))
            for table, group in rows.items():
                if self.dialect.set_based_apply and self._bulk.copy(cur, table, group):
                    continue
                stmts = self.tables[table][2]
                for event, params in group:
                    cur.execute(stmts.lock, params)
                    if cur.fetchone()[1]:  # there: overwritten, with its version
                        cur.execute(self._write(event, params, new_row=False), params)
                    else:  # absent: inserted, then its version (a tombstone's statement)
                        cur.execute(self._write(event, params, new_row=True), params)
                        cur.fetchone()
                        cur.execute(stmts.tombstone, params)
            cur.execute(*then)

    def apply_batch(self, events: Sequence[Event]) -> list[Outcome]:
        """Apply events in one transaction. Raises DatabaseError if the database is gone
        (nothing of the batch is then committed: retry it after reconnect()).

        The fast path runs the batch without savepoints; if the database refuses one
        event, the batch is rolled back and run again with a savepoint per event, so that
        event alone is logged as a conflict."""
        if self.conn is None or self.conn.closed:
            self.reconnect()
        stale = self._beyond_horizon(events)
        if stale:
            kept = [e for i, e in enumerate(events) if i not in stale]
            applied = iter(self.apply_batch(kept) if kept else [])
            return [stale[i] if i in stale else next(applied) for i in range(len(events))]
        for attempt in range(1, LOCK_RETRIES + 1):
            try:
                try:
                    outcomes = self._run(events, savepoints=False)
                except _Retry:
                    outcomes = self._run(events, savepoints=True)
                if self.progress is not None:
                    self.progress.passed(self._echoed)  # committed
                return outcomes
            except self.errors.deadlock as exc:
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
            except self.errors.lost as exc:
                raise DatabaseError(f"database connection lost while applying: {exc}") from exc
        raise DatabaseError(f"batch rolled back {LOCK_RETRIES} times in a row: {last}")

    def _beyond_horizon(self, events: Sequence[Event]) -> dict[int, Outcome]:
        """Replayed events older than what cleanup has purged here (its horizon,
        bridge/cleanup.py), by index: skipped as superseded. Their inbox entry and the
        tombstone of their row may be gone, so neither would stop them: an insert of a row
        deleted since would bring it back. (A repair event carries a row's current winning
        version, not history: it is never skipped for its age.)"""
        relayed = [i for i, e in enumerate(events) if e.relayed and not e.repair]
        if not relayed:
            return {}
        horizon = cleanup_horizon(self.dialect, self.conn)
        if horizon is None:
            return {}
        reason = (
            f"replayed event older than this site's cleanup horizon ({horizon.isoformat()}): "
            "its inbox entry and tombstones may be purged, so it is not applied"
        )
        return {i: Outcome(SUPERSEDED, reason) for i in relayed if events[i].timestamp < horizon}

    def row_states(self, table: str, keys: Sequence[dict[str, Any]]) -> list[RowState]:
        """What a change of each of these rows would be decided on here (the row, its
        version, a pending local change), read in one transaction: what `bridge repair`
        compares across sites. Nothing is written."""
        if self.conn is None or self.conn.closed:
            self.reconnect()
        _table, info, stmts = self.tables[table]
        states = []
        with self.conn.transaction(), self.conn.cursor() as cur:
            for key in keys:
                probe = Event(
                    _PROBE_ID,
                    dt.datetime.now(dt.UTC),
                    "",
                    f"{table}.delete",
                    {"table": table, "op": "delete", "key": key},
                )
                params = {**self._params(info, probe), **self._version_params(probe)}
                states.append(self._read(cur, stmts, params))
        return states

    def clock(self) -> dt.datetime:
        """The database's clock (what outbox rows are stamped with)."""
        if self.conn is None or self.conn.closed:
            self.reconnect()
        row = self.conn.execute(self._sql["clock"]).fetchone()
        assert row is not None
        when: dt.datetime = row[0]
        return when

    def _run(self, events: Sequence[Event], savepoints: bool) -> list[Outcome]:
        outcomes: list[Outcome] = []
        self._echoed = None
        self.waited = []
        with self.conn.transaction(), self.conn.cursor() as cur:
            self._begin(cur)
            if savepoints or not (self.set_based and self.dialect.set_based_apply):
                outcomes = [self._apply_guarded(cur, event, savepoints) for event in events]
            else:  # runs of events set-based (bridge/bulk.py), the others one by one
                try:
                    outcomes = self._bulk.apply(cur, events)
                except self.errors.unwritable as exc:
                    raise _Retry() from exc
            if self._waiting or any(o.status == WAITING for o in outcomes):
                self._retry_waiting(cur)
            failpoints.hit("apply.statements")
        return outcomes

    def _apply_guarded(
        self, cur: Any, event: Event, savepoint: bool, waited: bool = False
    ) -> Outcome:
        try:
            if not savepoint:
                return self._apply_one(cur, event)
            with self.conn.transaction():
                return self._apply_one(cur, event)
        except EventError as exc:  # raised before any statement of this event ran
            return Outcome(REJECTED, str(exc))
        except self.errors.unwritable as exc:
            if not savepoint:
                raise _Retry() from exc
            if isinstance(exc, self.errors.foreign_key):
                return self._wait(cur, event, exc, again=waited)
            # The row cannot be written here (a local constraint, a value out of range):
            # keep the event as a conflict so it is not retried forever, and go on.
            reason = f"cannot apply: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
            log.warning(
                "site=%s event=%s table=%s origin=%s %s",
                self.config.site,
                event.id,
                event.table,
                event.origin,
                reason,
            )
            with self.conn.transaction():
                cur.execute(self._sql["inbox_insert"], {"id": event.id, "origin": event.origin})
                self._conflict(cur, event, reason, None, None)
            return Outcome(CONFLICT, reason, unwritable=True)

    def _wait(self, cur: Any, event: Event, exc: Exception, again: bool) -> Outcome:
        """Keep an event that references a row not here yet, or whose delete a row here
        still references: its savepoint was rolled back (it is not in the inbox), its
        message is acknowledged, and it is tried again after each batch (_retry_waiting).
        Changes arrive in the order their site made them, so a parent usually comes
        first; it comes after its child when the origin's dispatcher publishes the
        parent's transaction late (it committed after a later one was read), when
        RabbitMQ redelivers out of order, or when the child comes from another site.
        (Logged as a conflict, as it was, the child was lost.)"""
        reason = f"waiting: {one_line(exc)}"
        log.log(
            logging.DEBUG if again else logging.WARNING,
            "site=%s event=%s table=%s origin=%s key=%s %s",
            self.config.site,
            event.id,
            event.table,
            event.origin,
            event.key,
            reason,
        )
        cur.execute(
            self._sql["waiting_put"],
            {
                "id": event.id,
                "origin": event.origin,
                "body": codec.dumps(event.to_dict()),
                "reason": reason,
            },
        )
        return Outcome(WAITING, reason)

    def _retry_waiting(self, cur: Any) -> None:
        """Try the waiting events again, oldest first, each in a savepoint, as long as one
        of them applies (one can be the parent of another); then, if several are left, all
        of them together with the deferrable constraints deferred (rows that reference
        each other). An event that applies, or is decided on otherwise (a conflict, a
        duplicate), stops waiting."""
        cur.execute(self._sql["waiting_fetch"], {"limit": WAITING_PER_BATCH})
        waiting = [events.decode(body.encode()) for _, body in cur.fetchall()]
        while waiting:
            left = []
            for event in waiting:
                outcome = self._apply_guarded(cur, event, savepoint=True, waited=True)
                if outcome.status in (WAITING, REJECTED):
                    left.append(event)
                else:
                    self._waited(cur, event, outcome)
            if len(left) == len(waiting):
                break
            waiting = left
        if len(waiting) > 1:
            try:
                with self.conn.transaction():
                    cur.execute(self._sql["deferred"])
                    outcomes = [self._apply_one(cur, event) for event in waiting]
                    cur.execute(self._sql["immediate"])  # checks them all, now
            except (*self.errors.unwritable, EventError):
                return  # still waiting
            for event, outcome in zip(waiting, outcomes, strict=True):
                self._waited(cur, event, outcome)

    def _waited(self, cur: Any, event: Event, outcome: Outcome) -> None:
        cur.execute(self._sql["waiting_done"], {"id": event.id})
        self.waited.append((event, outcome))
        log.info(
            "site=%s event=%s table=%s origin=%s key=%s %s after waiting",
            self.config.site,
            event.id,
            event.table,
            event.origin,
            event.key,
            outcome.status,
        )

    def _version_params(self, event: Event) -> dict[str, Any]:
        """The bind values that name an event and its row version."""
        return {
            "table": event.table,
            "key": self._key_text(event),
            "ts": event.timestamp,
            "origin": event.origin,
            "deleted": event.op == "delete",
            "id": event.id,
        }

    def _apply_one(self, cur: Any, event: Event) -> Outcome:
        version = self._version_params(event)
        if event.origin == self.config.site and not event.repair:
            cur.execute(self._sql["outbox_delete"], version)
            published_at, deleted, ts, origin, event_id, _, unconfirmed = cur.fetchone()
            self._echo_seen(event, published_at, unconfirmed)
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
        fresh, present, settled, *row, _ = cur.fetchone()
        if not fresh:
            return Outcome(DUPLICATE)
        # the state read with the claim holds unless something committed on the row
        # between its snapshot and its lock (apply_lock)
        return self._settle(cur, event, params, present, RowState.of(*row) if settled else None)

    def _finished(self, count: int) -> None:
        """`count` more events of the batch are decided on and written (bridge/bulk.py
        calls it per run, and per event it applies alone): a hook for observers."""

    def _settle(
        self,
        cur: Any,
        event: Event,
        params: dict[str, Any],
        present: bool | None,
        state: RowState | None,
    ) -> Outcome:
        """Decide on a claimed change of a locked (or absent) row and apply it: `present`,
        whether the lock found the row (None: lock it first); `state`, what to decide on
        (None: read it under the lock)."""
        table, info, stmts = self.tables[event.table]
        while True:
            if present is None:
                cur.execute(stmts.lock, params)
                present, state = cur.fetchone()[1], None
            if state is None:
                state = self._read(cur, stmts, params)
            if (state.local_row is not None) == present:
                outcome = self._decide(cur, table, info, stmts, event, params, state)
                if outcome is not None:
                    return outcome
            # the row appeared since it was locked (a local insert of its key committed
            # meanwhile): lock it, read again and decide against it
            present, state = None, None

    @staticmethod
    def _read(cur: Any, stmts: Statements, params: dict[str, Any]) -> RowState:
        cur.execute(stmts.read, params)
        return RowState.of(*cur.fetchone())

    def _decide(
        self,
        cur: Any,
        table: TableConfig,
        info: TableInfo,
        stmts: Statements,
        event: Event,
        params: dict[str, Any],
        state: RowState,
    ) -> Outcome | None:
        """Decide on a change of the locked (or absent) row and apply it. None: the row was
        absent and a local insert of its key committed before ours could be written."""
        verdict = self._judge(table, info, event, state)
        local_row = state.local_row
        if verdict.status == SUPERSEDED:
            return Outcome(SUPERSEDED)
        if verdict.status == CONFLICT:
            self._conflict(cur, event, verdict.reason, verdict.known, local_row)
            return Outcome(CONFLICT, verdict.reason)
        if event.op == "delete":
            cur.execute(stmts.delete if local_row is not None else stmts.tombstone, params)
        elif local_row is not None:
            cur.execute(self._write(event, params, new_row=False), params)
        elif not self._insert(cur, stmts, event, params, state):
            return None
        self._overwrote(cur, event, verdict, local_row)
        return Outcome(APPLIED)

    def _judge(self, table: TableConfig, info: TableInfo, event: Event, state: RowState) -> Verdict:
        """Whether a change of a row in this state is applied (APPLIED), skipped
        (SUPERSEDED) or loses (CONFLICT, with the reason), under the table's policy."""
        known, local_row = state.version, state.local_row
        incoming: Version = (event.timestamp, event.origin)
        if known and known[1] == event.origin and incoming <= known:
            if event.repair and incoming == known and not self._pending_newer(state, known):
                # bridge repair: this version is the row's, but its values here differ
                # (changed behind bridge's back): write them again
                return Verdict(APPLIED, "", known, False)
            # An older change from the site whose later change of this row is already
            # applied: delivered late (RabbitMQ returns the unacknowledged messages of a
            # crashed consumer out of order). Not a conflict, and under every policy never
            # applied: a row is never rolled back to an earlier state of the same writer.
            return Verdict(SUPERSEDED, "", known, False)
        pending = False
        if state.pending_ts is not None and (
            known is None or (state.pending_ts, self.config.site) > known
        ):
            known, pending = (state.pending_ts, self.config.site), True
        lost = self._loses(table, info, event, incoming, known, pending, local_row)
        if lost:
            return Verdict(CONFLICT, lost, known, pending)
        return Verdict(APPLIED, "", known, pending)

    def _pending_newer(self, state: RowState, known: Version) -> bool:
        """A local change of the row, newer than `known`, is still in the outbox."""
        return state.pending_ts is not None and (state.pending_ts, self.config.site) > known

    def _overwrote(
        self, cur: Any, event: Event, verdict: Verdict, local_row: dict[str, Any] | None
    ) -> None:
        if verdict.pending:
            # a newer remote write replaced a local change that is still on its way out:
            # a true concurrent write, logged so the overwritten value stays visible
            self._conflict(
                cur, event, "overwrote a concurrent local change", verdict.known, local_row
            )

    def _insert(
        self,
        cur: Any,
        stmts: Statements,
        event: Event,
        params: dict[str, Any],
        state: RowState,
    ) -> bool:
        """Insert a row that was absent when the change was decided on. False, with nothing
        written, if a local transaction got in the way: one that inserted the key committed
        first (the row exists), or one that this insert waited for changed the row's
        pending changes (it inserted and deleted the key: no row, new outbox rows)."""
        if not self._insert_absent(cur, stmts, event, params):
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

    def _insert_absent(
        self, cur: Any, stmts: Statements, event: Event, params: dict[str, Any]
    ) -> bool:
        """Insert the absent row; False if a row of its key exists by now."""
        statement = self._write(event, params, new_row=True)
        if self.dialect.insert_skips_existing and not self.tables[event.table][1].pk_deferrable:
            cur.execute(statement, params)  # ON CONFLICT DO NOTHING: 0 rows if it exists
            return bool(cur.fetchone()[0])
        # A DEFERRABLE key is checked at the end of the statement, after waiting for a
        # local transaction that inserted the key meanwhile (so is every key of a database
        # without ON CONFLICT DO NOTHING, Dialect.insert_skips_existing): if it committed,
        # the insert fails (in a savepoint, so the apply goes on) and the row is decided on
        # again.
        try:
            with self.conn.transaction():
                cur.execute(statement, params)
                return bool(cur.fetchone()[0])
        except self.errors.unique:
            cur.execute(stmts.lock, params)
            if cur.fetchone()[1]:
                return False
            raise  # another unique constraint: the row cannot be written here

    def _echo_seen(self, event: Event, published_at: dt.datetime | None, unconfirmed: bool) -> None:
        """Our event came back: note how far the own queue was taken (the confirm time of
        a row it dropped)."""
        if unconfirmed:  # kept until its publish is confirmed (outbox_delete.sql.j2)
            log.debug(
                "site=%s event=%s table=%s origin=%s echo came before the publish was confirmed",
                self.config.site,
                event.id,
                event.table,
                event.origin,
            )
        if published_at is not None and (self._echoed is None or published_at > self._echoed):
            self._echoed = published_at

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
            params.update((c.param, codec.to_text(event.key[c.name], c.kind)) for c in info.pk)
        except (KeyError, ValueError, TypeError, ArithmeticError):
            return  # not a key of this table as it is now: nothing of it can be here
        params.update(
            table=event.table,
            key=self._key_text(event),
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
        """Bind parameters of an event's values: the key's, and for an insert or update
        every column the event carries (one it lacks is left out: the upsert gives it its
        DEFAULT). A value for a column generated here is ignored. A column the table lacks
        is refused, after describing the table again in case it was added since."""
        source = event.key if event.op == "delete" else event.row
        assert source is not None
        info = self._known_columns(info, event, source)
        missing = [c.name for c in info.pk if c.name not in event.key]
        if missing:
            raise EventError(f"key lacks primary-key column(s) {missing} of {event.table!r}")
        params: dict[str, Any] = {}
        try:
            for c in info.pk:
                params[c.param] = codec.to_text(event.key[c.name], c.kind)
            if event.op != "delete":
                # the row's primary-key values too: a float key's exact form is in the row
                # only (-0; the key holds 0, as it always did)
                for c in info.columns:
                    if c.name in source:
                        params[c.param] = self._bind(c, source[c.name], event.json_text)
        except ValueError as exc:
            raise EventError(f"bad value in {event.table!r}: {exc}") from None
        return params

    def _known_columns(self, info: TableInfo, event: Event, source: dict[str, Any]) -> TableInfo:
        known = {c.name for c in info.columns}
        if not set(source) - set(info.generated) - known:
            return info
        # the table may have been altered since it was described
        fresh = self._describe(self.tables[event.table][0]) or info
        unknown = sorted(set(source) - set(fresh.generated) - {c.name for c in fresh.columns})
        if unknown:
            raise EventError(
                f"unknown column(s) {unknown} for table {event.table!r}: site "
                f"{self.config.site}'s table lacks what the sending site's table has; add "
                f"them here as they were added there (ALTER TABLE ... ADD COLUMN), then run "
                "bridge dlq retry"
            )
        return fresh

    def _key_text(self, event: Event) -> str:
        """The event's row key as this database holds it (Dialect.key_text)."""
        if self.dialect.key_as_json:
            return event.key_text
        text: str = self.dialect.key_text(event.key)
        return text

    def _bind(self, column: Column, value: Any, json_text: frozenset[str] | None) -> Any:
        """A value of the event as its column's input takes it: text (bytes for bytes), or
        an array or composite in its JSON form, which the statement converts (jsonb)."""
        if codec.is_structured(value, column.kind):
            return self.dialect.bind_structured(value)
        return codec.to_text(value, column.kind, json_text is None or column.name in json_text)

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
            mine, theirs = local_row.get(column.name), event.row.get(column.name)
            if self._not_newer(column, theirs, event.json_text, mine):
                return f"older than the local row by {column.name} ({theirs} <= {mine})"
            return ""
        if incoming <= known:
            return (
                f"older than the local version ({_fmt(incoming)} <= {_fmt(known)}): "
                "last writer wins"
            )
        return ""

    def _not_newer(
        self, column: Column, theirs: Any, json_text: frozenset[str] | None, mine: Any
    ) -> bool:
        """Whether the incoming value of the policy column is not newer than the local row's
        (its exact form), as the database orders the column's type; False if either is NULL.
        The incoming value already passed _params."""
        if theirs is None or mine is None:
            return False
        values = {
            "theirs": self._bind(column, theirs, json_text),
            "mine": self._bind(column, mine, None),
        }
        forms = {k: "json" if self.dialect.is_json(v) else "text" for k, v in values.items()}
        key = (column.sql_type, forms["theirs"], forms["mine"])
        if key not in self._compare:
            self._compare[key] = self.dialect.render("apply_compare", column=column, **forms)
        row = self.conn.execute(self._compare[key], values).fetchone()
        return bool(row and row[0])

    def _conflict(
        self,
        cur: Any,
        event: Event,
        reason: str,
        known: Version | None,
        local_row: dict[str, Any] | None,
    ) -> None:
        log.info(
            "site=%s event=%s table=%s origin=%s key=%s conflict: %s",
            self.config.site,
            event.id,
            event.table,
            event.origin,
            event.key,
            reason,
        )
        cur.execute(
            self._sql["conflict_insert"],
            {
                "id": event.id,
                "table": event.table,
                "key": self._key_text(event),
                "reason": reason,
                "ts": event.timestamp,
                "origin": event.origin,
                "incoming": codec.dumps(event.to_dict()),
                "local_ts": known[0] if known else None,
                "local_origin": known[1] if known else None,
                "local_row": codec.dumps(local_row) if local_row is not None else None,
            },
        )


def _fmt(version: Version) -> str:
    return f"{version[0].isoformat()} {version[1]}"
