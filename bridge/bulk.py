"""Set-based apply: a run of received events of one table in a few statements, not a few
statements per event.

A batch (bridge/apply.py) is cut into runs: consecutive events of one table with distinct
row keys and ids, either this site's own events coming back (echoes: their outbox rows
dropped in one statement, outbox_delete_many.sql.j2) or other sites' changes with every
value as text (the exact form) on a table whose primary key is not DEFERRABLE. The events
outside runs (values in their JSON form, a DEFERRABLE key, a table not synced here) are
applied one by one as before, in their place. For a run of changes:

1. one statement records every event in the inbox, locks the rows that exist (in event
   order) and reads each row's state (apply_claim_many.sql.j2), as apply_lock does for one;
2. each event is judged on its state exactly as one applied alone (Applier._judge):
   duplicate, superseded, conflict (logged), or applied;
3. the applied ones are written by kind, one statement each: the locked rows' overwrites
   and their versions (apply_write_many), their removals and tombstones, the tombstones of
   deletes of absent rows (apply_delete_many), the inserts of absent rows unless their key
   exists by now, then the versions of those whose state did not change meanwhile
   (apply_confirm_many);
4. an event whose state is not settled by the claim (a local transaction committed on its
   row between the statement's snapshot and its lock), or whose insert found the key or a
   changed state, goes on alone through Applier._settle, as it would have.

The keys of a run are distinct, so its events touch different rows and their order within
the run does not matter; a database refusal (a constraint, a foreign key) rolls the batch
back and it runs again one event at a time with savepoints (Applier.apply_batch).
Before the run's statements, `bridge.events_by_key` maps each row key to its event id
(apply_name.sql.j2), for a trigger of the business table to tell which event wrote a row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from bridge.decision import (
    APPLIED,
    CONFLICT,
    DUPLICATE,
    ECHO,
    REJECTED,
    SUPERSEDED,
    Outcome,
    RowState,
    Verdict,
)
from bridge.errors import EventError
from bridge.event import Event

if TYPE_CHECKING:
    from bridge.apply import Applier
    from bridge.dialects.base import TableInfo

MAX_RUN = 1000  # events in one run (statements' arrays)
# the templates of the set-based path (sql_templates/<dialect>/apply_*_many.sql.j2)
TEMPLATES = ("apply_claim_many", "apply_write_many", "apply_confirm_many", "apply_delete_many")


def variants(template: str, info: TableInfo) -> list[dict[str, Any]]:
    """The switches a template is rendered with for a table (tests render each): the
    writes for a run carrying every column, as text."""
    if template == "apply_write_many":
        every = tuple((c, "text") for c in info.columns)
        return [{"present": every, "new_row": new_row} for new_row in (False, True)]
    if template == "apply_confirm_many":
        return [{"deleted": deleted} for deleted in (False, True)]
    return [{}]


@dataclass
class _Item:
    """One event of a run: where it is in the batch, its bind values, its decision."""

    index: int
    event: Event
    params: dict[str, Any]
    key: str  # the row key as bridge_row_version holds it
    site: str  # this site
    state: RowState | None = None
    verdict: Verdict | None = None


@dataclass
class _Run:
    table: str
    echo: bool  # this site's own events coming back (else: other sites' changes)
    items: list[_Item] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)

    def takes(self, item: _Item) -> bool:
        return (
            item.event.table == self.table
            and (item.event.origin == item.site) == self.echo
            and item.key not in self.keys
            and item.event.id not in self.ids
            and len(self.items) < MAX_RUN
        )

    def add(self, item: _Item) -> None:
        self.items.append(item)
        self.keys.add(item.key)
        self.ids.add(item.event.id)


class Bulk:
    """The set-based path of one Applier (it owns the connection, tables and statements)."""

    def __init__(self, applier: Applier) -> None:
        self.a = applier
        self._statements: dict[tuple[Any, ...], str] = {}

    def apply(self, cur: Any, events: Sequence[Event]) -> list[Outcome]:
        """Apply a batch: runs set-based, the other events alone, all in batch order."""
        outcomes: dict[int, Outcome] = {}
        run: _Run | None = None
        for index, event in enumerate(events):
            item = self._item(index, event, outcomes)
            if item is not None and run is not None and run.takes(item):
                run.add(item)
                continue
            if run is not None:
                self._run(cur, run, outcomes)
                run = None
            if item is not None:
                run = _Run(event.table, event.origin == item.site)
                run.add(item)
            elif index not in outcomes:
                outcomes[index] = self.a._apply_guarded(cur, event, savepoint=False)
        if run is not None:
            self._run(cur, run, outcomes)
        return [outcomes[i] for i in range(len(events))]

    def _item(self, index: int, event: Event, outcomes: dict[int, Outcome]) -> _Item | None:
        """The event as an item of a run, or None if it is applied alone (or refused: its
        outcome is then set)."""
        a = self.a
        key = event.key_text
        if event.repair:  # bridge repair: alone (rare; judged apart at an equal version)
            return None
        if event.origin == a.config.site:  # an echo: whatever the table
            return _Item(index, event, a._version_params(event), key, a.config.site)
        entry = a.tables.get(event.table)
        if entry is None or entry[1].pk_deferrable:
            return None
        try:
            params = a._params(entry[1], event)
            params.update(a._version_params(event))
        except EventError as exc:
            outcomes[index] = Outcome(REJECTED, str(exc))
            return None
        info = a.tables[event.table][1]  # described again by _params if it changed
        if info.pk_deferrable or any(isinstance(v, Jsonb) for v in params.values()):
            return None
        return _Item(index, event, params, key, a.config.site)

    def copy(self, cur: Any, table: str, rows: list[tuple[Event, dict[str, Any]]]) -> bool:
        """Write rows copied from another site (Applier.write_copied), each with its
        version, in one statement (apply_write_many); False, with nothing written, where
        they cannot be (a DEFERRABLE key, a value in its JSON form, rows carrying different
        columns): the caller writes them one by one."""
        info = self.a.tables[table][1]
        if info.pk_deferrable or len({frozenset(p) for _, p in rows}) > 1:
            return False
        if any(isinstance(v, Jsonb) for _, p in rows for v in p.values()):
            return False
        site = self.a.config.site
        items = [_Item(n, e, p, p["key"], site) for n, (e, p) in enumerate(rows)]
        self._write(cur, table, items, new_row=False)
        return True

    # -- one run --------------------------------------------------------------------------
    def _run(self, cur: Any, run: _Run, outcomes: dict[int, Outcome]) -> None:
        if run.echo:
            self._echoes(cur, run, outcomes)
        else:
            self._changes(cur, run, outcomes)

    def _echoes(self, cur: Any, run: _Run, outcomes: dict[int, Outcome]) -> None:
        """This site's own events back: their outbox rows dropped (or noted) in one
        statement; a row a remote change reached meanwhile is looked at alone."""
        a = self.a
        items = run.items
        params = self._arrays(run.table, items, ())
        params["deleted"] = [i.event.op == "delete" for i in items]
        cur.execute(self._sql("outbox_delete_many"), params)
        rows = cur.fetchall()
        a._finished(len(items))
        for item, (_n, published_at, deleted, ts, origin, event_id, unconfirmed) in zip(
            items, rows, strict=True
        ):
            a._echo_seen(item.event, published_at, unconfirmed)
            if ts is not None and origin != item.event.origin:
                cur.execute(a._sql["apply_name"], {"id": item.event.id, "events": "{}"})
                a._echo_after_remote(cur, item.event, (ts, origin), deleted, event_id)
            outcomes[item.index] = Outcome(ECHO)

    def _changes(self, cur: Any, run: _Run, outcomes: dict[int, Outcome]) -> None:
        """Other sites' changes of one table (the module's docstring)."""
        a = self.a
        table, info, _stmts = a.tables[run.table]
        items = run.items
        cur.execute(
            a._sql["apply_name"],
            {"id": "", "events": json.dumps({i.key: i.event.id for i in items})},
        )
        cur.execute(
            self._sql("apply_claim_many", run.table), self._arrays(run.table, items, info.pk)
        )
        unsettled: list[tuple[_Item, bool | None, RowState | None]] = []
        upserts: list[_Item] = []
        inserts: list[_Item] = []
        removes: list[_Item] = []
        tombstones: list[_Item] = []
        claimed = cur.fetchall()
        for position, (item, (n, fresh, present, settled, *row)) in enumerate(
            zip(items, claimed, strict=True)
        ):
            if n != position:
                raise AssertionError(f"apply_claim_many returned event {n} at {position}")
            if not fresh:
                outcomes[item.index] = Outcome(DUPLICATE)
                continue
            state = RowState.of(*row)
            if not settled or (state.local_row is not None) != present:
                unsettled.append((item, present, None))
                continue
            verdict = a._judge(table, info, item.event, state)
            item.state, item.verdict = state, verdict
            if verdict.status == SUPERSEDED:
                outcomes[item.index] = Outcome(SUPERSEDED)
            elif verdict.status == CONFLICT:  # logged below, in event order
                outcomes[item.index] = Outcome(CONFLICT, verdict.reason)
            elif item.event.op == "delete":
                (removes if present else tombstones).append(item)
            else:
                (upserts if present else inserts).append(item)
        if removes:
            self._execute(cur, "apply_delete_many", run.table, removes, info.pk)
        for group in self._by_columns(upserts):
            self._write(cur, run.table, group, new_row=False)
        inserted: list[_Item] = []
        for group in self._by_columns(inserts):
            done = set(self._write(cur, run.table, group, new_row=True))
            inserted += [item for n, item in enumerate(group) if n in done]
        confirmed = {item.index for item in self._confirm(cur, run.table, inserted, False)}
        # a delete of an absent row: its tombstone, unless the row or its pending changes
        # changed since the claim's snapshot (a local transaction it waited for committed)
        confirmed |= {item.index for item in self._confirm(cur, run.table, tombstones, True)}
        written = {i.index for i in removes + upserts} | confirmed
        for item in inserted:
            if item.index not in confirmed:  # its state changed meanwhile: undo it
                cur.execute(a.tables[run.table][2].undo, item.params)
        a._finished(len(items) - len(unsettled) - sum(1 for i in items if _again(i, written)))
        # then, in event order (the conflict log as one by one): the conflicts, and the
        # events decided again alone: a claim not settled, an insert that found the key
        # (a local insert committed meanwhile) or a changed state
        alone = {item.index: (present, state) for item, present, state in unsettled}
        for item in items:
            if item.index in alone or _again(item, written):
                was_present, known_state = alone.get(item.index, (None, None))
                cur.execute(a._sql["apply_name"], {"id": item.event.id, "events": "{}"})
                outcomes[item.index] = a._settle(
                    cur, item.event, item.params, was_present, known_state
                )
                a._finished(1)
            elif item.verdict is not None and item.verdict.status == CONFLICT:
                assert item.state is not None
                a._conflict(
                    cur, item.event, item.verdict.reason, item.verdict.known, item.state.local_row
                )
            elif item.index in written:
                self._applied(cur, item, outcomes)

    def _applied(self, cur: Any, item: _Item, outcomes: dict[int, Outcome]) -> None:
        assert item.verdict is not None and item.state is not None
        self.a._overwrote(cur, item.event, item.verdict, item.state.local_row)
        outcomes[item.index] = Outcome(APPLIED)

    def _confirm(self, cur: Any, table: str, inserted: list[_Item], deleted: bool) -> list[_Item]:
        """The items (rows inserted; `deleted`: deletes of absent rows) whose state is
        still what they were decided on; their versions are recorded."""
        if not inserted:
            return []
        versions = [
            i.state.version if i.state and i.state.version else (None, None) for i in inserted
        ]
        params = self._arrays(table, inserted, self.a.tables[table][1].pk if deleted else ())
        params.update(
            decided_ts=[v[0] for v in versions],
            decided_origin=[v[1] for v in versions],
            decided_pending=[i.state.pending_ts if i.state else None for i in inserted],
        )
        cur.execute(self._sql("apply_confirm_many", table, deleted=deleted), params)
        return [inserted[n] for (n,) in cur.fetchall()]

    def _write(self, cur: Any, table: str, group: list[_Item], new_row: bool) -> list[int]:
        info = self.a.tables[table][1]
        carried = tuple(c for c in info.columns if c.param in group[0].params)
        statement = self._sql(
            "apply_write_many", table, present=tuple((c, "text") for c in carried), new_row=new_row
        )
        cur.execute(statement, self._arrays(table, group, carried))
        return [n for (n,) in cur.fetchall()]

    def _execute(
        self, cur: Any, template: str, table: str, items: list[_Item], columns: Any, **switches: Any
    ) -> None:
        cur.execute(self._sql(template, table, **switches), self._arrays(table, items, columns))

    @staticmethod
    def _by_columns(items: list[_Item]) -> list[list[_Item]]:
        """Items grouped by the columns they carry, groups in the order of their first."""
        groups: dict[frozenset[str], list[_Item]] = {}
        for item in items:
            groups.setdefault(frozenset(item.params), []).append(item)
        return list(groups.values())

    def _arrays(self, table: str, items: list[_Item], columns: Any) -> dict[str, Any]:
        """The bind arrays of apply_*_many (_many.sql.j2): `n` is the place in `items`."""
        params: dict[str, Any] = {
            "table": table,
            "n": list(range(len(items))),
            "id": [i.event.id or None for i in items],  # none: a copied row without one
            "origin": [i.event.origin for i in items],
            "key": [i.key for i in items],
            "ts": [i.event.timestamp for i in items],
        }
        for c in columns:
            params[c.param] = [_text(i.params.get(c.param)) for i in items]
        return params

    def _sql(self, template: str, table: str | None = None, **switches: Any) -> str:
        """A statement, rendered once per table (None: a template of no table) and
        switches."""
        key = (template, table, tuple(sorted(switches.items(), key=lambda kv: kv[0])))
        statement = self._statements.get(key)
        if statement is None:
            if table is None:
                statement = self.a.dialect.render(template, **switches)
            else:
                info = self.a.tables[table][1]
                statement = self.a.dialect.render(template, table=info.table, info=info, **switches)
            self._statements[key] = statement
        return statement

    def forget(self, table: str) -> None:
        """The table was described again: its statements are rendered anew."""
        self._statements = {k: v for k, v in self._statements.items() if k[1] != table}


def _again(item: _Item, written: set[int]) -> bool:
    """Decided to be applied, and not written: decided on again, alone."""
    return item.verdict is not None and item.verdict.status == APPLIED and item.index not in written


def _text(value: Any) -> str | None:
    """A bind value as text for a text[] array: bytes in PostgreSQL's hex form."""
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return None if value is None else str(value)
