"""The tally every fault test prints and checks: every change an application committed at
any site, followed by its event id to every other site and to the archive.

What it stands on, installed in each site database by `install_audit` (test only):
- `test_audit`: every row write `orders` receives, from a row trigger: the transaction, the
  operation, the old and new key, and for a write of bridge's apply the event it applies
  (`bridge.event`, set by the applier for an event applied alone; for a set-based
  statement, `bridge.events_by_key`, each row key's event: bridge/apply.py, bridge/bulk.py);
- `test_captured`: every event bridge's capture put in the outbox, with its transaction
  (a row trigger on `bridge_outbox`: the outbox itself forgets an event when its echo
  comes back).

The reference is what the applications did, not what bridge says: every application write
(`test_audit`, not applying) must match exactly one captured event of its transaction,
operation and key, and every captured event one write. (A row whose key changes is an
update of the new key and a delete of the old one; rows exchanging keys in one statement
are not handled here.) Then each captured event, by id:
- is in the archive, once (and the archive holds nothing else);
- at each other site, is in the inbox and was applied by exactly one write naming it, or
  was not applied for a reason the site's state proves:
  - a logged conflict that says its change lost to a newer version, with that version
    newer indeed (a `cannot apply` conflict is a failure: the row could not be written);
  - superseded: a later change of the row by the same origin arrived there first;
  - a delete of a row that was not there: the last write of that key there before it was
    a delete (or there was none).
Anything else is lost; more than one write naming an event (an insert undone and done
again counts once) is applied twice.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.config import Config
from tests.conftest import db_of, sql

AUDIT = """
CREATE TABLE IF NOT EXISTS test_audit (
    n        bigserial   PRIMARY KEY,
    txid     xid8        NOT NULL DEFAULT pg_current_xact_id(),
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    applying boolean     NOT NULL,
    op       text        NOT NULL,
    old_id   bigint,
    new_id   bigint,
    event_id uuid
);
CREATE OR REPLACE FUNCTION test_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    applying boolean := coalesce(current_setting('bridge.applying', true), '') = 'on';
BEGIN
    INSERT INTO test_audit (applying, op, old_id, new_id, event_id)
    VALUES (applying, TG_OP,
            CASE WHEN TG_OP <> 'INSERT' THEN OLD.id END,
            CASE WHEN TG_OP <> 'DELETE' THEN NEW.id END,
            CASE WHEN applying THEN coalesce(
                nullif(current_setting('bridge.event', true), ''),
                nullif(current_setting('bridge.events_by_key', true), '')::jsonb
                    ->> jsonb_build_object('id', CASE WHEN TG_OP = 'DELETE' THEN OLD.id
                                                      ELSE NEW.id END)::text)::uuid END);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS test_audit ON orders;
CREATE TRIGGER test_audit AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION test_audit();
CREATE TABLE IF NOT EXISTS test_captured (
    event_id uuid        PRIMARY KEY,
    txid     xid8        NOT NULL DEFAULT pg_current_xact_id(),
    op       text        NOT NULL,
    id       bigint      NOT NULL,
    ts       timestamptz NOT NULL
);
CREATE OR REPLACE FUNCTION test_captured() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_captured (event_id, op, id, ts)
    VALUES (NEW.event_id, NEW.payload ->> 'op', (NEW.payload -> 'key' ->> 'id')::bigint,
            NEW.created_at);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS test_captured ON bridge_outbox;
CREATE TRIGGER test_captured AFTER INSERT ON bridge_outbox
    FOR EACH ROW EXECUTE FUNCTION test_captured();
"""

# conflicts that say the change lost to a newer version (bridge/apply.py, docs/conflicts.md)
LOST_TO_NEWER = (
    "older than the local version",
    "older than the local row by",
    "manual policy",
    "lost to a local change made while it was applied here",
)


def install_audit(cfgs: Iterable[Config]) -> None:
    for c in cfgs:
        sql(db_of(c), AUDIT)


class _Logs(Protocol):
    def duplicates_skipped(self) -> int: ...


@dataclass(frozen=True)
class Event:
    id: str
    origin: str
    op: str
    key: int
    ts: dt.datetime


@dataclass
class SiteTally:
    """What one site did with every other site's events."""

    inbox: int = 0  # other sites' events recorded as received
    applied: int = 0  # events applied by a write naming them
    logged: int = 0  # lost to a newer version, logged, proven
    superseded: int = 0
    absent_deletes: int = 0
    duplicates: int = 0  # redeliveries skipped (from the logs)
    conflicts: int = 0  # every bridge_conflicts row
    rows: int = 0
    missing: list[str] = field(default_factory=list)  # never received here
    unexplained: list[str] = field(default_factory=list)  # received, not applied, no proof
    refused: list[str] = field(default_factory=list)  # 'cannot apply' conflicts
    twice: list[str] = field(default_factory=list)  # applied by more than one write
    unnamed: list[str] = field(default_factory=list)  # apply writes naming no known event

    @property
    def lost(self) -> int:
        return len(self.missing) + len(self.unexplained) + len(self.refused)

    @property
    def applied_twice(self) -> int:
        return len(self.twice)


@dataclass
class Tally:
    written: int  # events the applications' writes produced (the test's own count)
    captured: int  # events found captured (test_captured)
    archived: int
    uncaptured: list[str] = field(default_factory=list)  # application writes with no event
    phantom: list[str] = field(default_factory=list)  # events with no application write
    unarchived: list[str] = field(default_factory=list)
    extra_archived: list[str] = field(default_factory=list)
    sites: dict[str, SiteTally] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return (
            len(self.uncaptured) + len(self.unarchived) + sum(s.lost for s in self.sites.values())
        )

    @property
    def applied_twice(self) -> int:
        return len(self.phantom) + sum(s.applied_twice for s in self.sites.values())

    def line(self) -> str:
        per = "; ".join(
            f"{site}: applied {s.applied}, duplicates skipped {s.duplicates}, superseded "
            f"{s.superseded}, lost to newer {s.logged}, deletes of absent rows "
            f"{s.absent_deletes}, conflicts {s.conflicts}, rows {s.rows}"
            for site, s in self.sites.items()
        )
        return (
            f"events written {self.written}, captured {self.captured}, archived "
            f"{self.archived}; {per}; lost {self.lost}, applied twice {self.applied_twice}"
        )

    def problems(self) -> list[str]:
        found = []
        for name, items in (
            ("application writes never captured", self.uncaptured),
            ("events captured without an application write", self.phantom),
            ("events never archived", self.unarchived),
            ("archived events never captured", self.extra_archived),
        ):
            if items:
                found.append(f"{len(items)} {name}: {items[:3]}")
        for site, s in self.sites.items():
            for name, items in (
                ("never received", s.missing),
                ("received, not applied, not accounted for", s.unexplained),
                ("refused by the database (cannot apply)", s.refused),
                ("applied twice", s.twice),
                ("apply writes naming no event of another site", s.unnamed),
            ):
                if items:
                    found.append(f"{site}: {len(items)} {name}: {items[:3]}")
        if self.written != self.captured:
            found.append(f"the test counted {self.written} events, {self.captured} captured")
        return found

    def check(self) -> None:
        """Nothing lost, nothing applied twice, every event accounted for by id."""
        problems = self.problems()
        assert problems == [], f"{self.line()}\n" + "\n".join(problems)


def tally(
    cfgs: list[Config],
    written: int,
    procs: Mapping[str, _Logs],
    archive: Config | None = None,
) -> Tally:
    """Account for every event at every site; `archive` defaults to the archive site."""
    archive = archive or next(c for c in cfgs if c.is_archive)
    events: dict[str, Event] = {}
    t = Tally(written=written, captured=0, archived=0)
    for c in cfgs:
        captured = _captured(c)
        events.update((e.id, e) for e in captured)
        _match_writes(c, captured, t)
    t.captured = len(events)
    archived = {e for (e,) in sql(db_of(archive), "SELECT event_id::text FROM bridge_archive")}
    t.archived = len(archived)
    t.unarchived = sorted(set(events) - archived)
    t.extra_archived = sorted(archived - set(events))
    for c in cfgs:
        proc = procs.get(c.site)
        t.sites[c.site] = _site(c, events, proc.duplicates_skipped() if proc else 0)
    return t


def _captured(cfg: Config) -> list[Event]:
    return [
        Event(e, cfg.site, op, key, ts)
        for e, op, key, ts in sql(
            db_of(cfg), "SELECT event_id::text, op, id, ts FROM test_captured ORDER BY ts"
        )
    ]


def _match_writes(cfg: Config, captured: list[Event], t: Tally) -> None:
    """Every application write of the site is exactly one captured event, and back."""
    db = db_of(cfg)
    expected: Counter[tuple[Any, str, int]] = Counter()
    for txid, op, old_id, new_id in sql(
        db, "SELECT txid::text, op, old_id, new_id FROM test_audit WHERE NOT applying"
    ):
        if op == "INSERT":
            expected[(txid, "insert", new_id)] += 1
        elif op == "DELETE":
            expected[(txid, "delete", old_id)] += 1
        else:
            expected[(txid, "update", new_id)] += 1
            if old_id != new_id:
                expected[(txid, "delete", old_id)] += 1
    txids = dict(sql(db, "SELECT event_id::text, txid::text FROM test_captured"))
    got: Counter[tuple[Any, str, int]] = Counter((txids[e.id], e.op, e.key) for e in captured)
    t.uncaptured += [f"{cfg.site} {k}" for k in (expected - got).elements()]
    t.phantom += [f"{cfg.site} {k}" for k in (got - expected).elements()]


def _site(cfg: Config, events: dict[str, Event], duplicates: int) -> SiteTally:
    db = db_of(cfg)
    s = SiteTally(duplicates=duplicates)
    arrived: dict[str, dt.datetime] = dict(
        sql(db, "SELECT event_id::text, applied_at FROM bridge_inbox")
    )
    audit = sql(
        db,
        "SELECT at, applying, op, coalesce(new_id, old_id), event_id::text FROM test_audit "
        "ORDER BY n",
    )
    writes: dict[str, list[str]] = {}
    history: dict[int, list[tuple[dt.datetime, str]]] = {}  # key -> (when, op) of writes
    for at, applying, op, key, event_id in audit:
        history.setdefault(key, []).append((at, op))
        if applying:
            if event_id in events and events[event_id].origin != cfg.site:
                writes.setdefault(event_id, []).append(op)
            elif not (event_id in events and events[event_id].origin == cfg.site):
                s.unnamed.append(f"{op} of id {key} naming {event_id}")
    conflicts = sql(
        db,
        "SELECT event_id::text, reason, local_ts, local_origin FROM bridge_conflicts",
    )
    s.conflicts = len(conflicts)
    logged: dict[str, list[tuple[str, Any, Any]]] = {}
    for e, reason, local_ts, local_origin in conflicts:
        logged.setdefault(e, []).append((reason, local_ts, local_origin))
    foreign = [e for e in events.values() if e.origin != cfg.site]
    by_writer: dict[tuple[int, str], list[Event]] = {}
    for e in foreign:
        by_writer.setdefault((e.key, e.origin), []).append(e)
    for e in foreign:
        if e.id not in arrived:
            s.missing.append(f"{e.origin} {e.op} id {e.key} {e.id}")
            continue
        s.inbox += 1
        done = _net_writes(writes.get(e.id, []))
        if done == 1:
            s.applied += 1
            continue
        if done > 1:
            s.twice.append(f"{e.origin} {e.op} id {e.key} {e.id}: {writes[e.id]}")
            continue
        reasons = logged.get(e.id, [])
        if any(r.startswith("cannot apply") for r, _, _ in reasons):
            s.refused.append(f"{e.id}: {reasons}")
        elif any(
            r.startswith(LOST_TO_NEWER) and lts is not None and (lts, lo) >= (e.ts, e.origin)
            for r, lts, lo in reasons
        ):
            s.logged += 1
        elif any(
            later.ts > e.ts and later.id in arrived and arrived[later.id] < arrived[e.id]
            for later in by_writer[(e.key, e.origin)]
        ):
            s.superseded += 1
        elif e.op == "delete" and _absent(history.get(e.key, []), arrived[e.id]):
            s.absent_deletes += 1
        else:
            s.unexplained.append(f"{e.origin} {e.op} id {e.key} at {e.ts} {e.id}, logged {reasons}")
    s.rows = sql(db, "SELECT count(*) FROM orders")[0][0]
    return s


def _net_writes(ops: list[str]) -> int:
    """Writes of one event, less an insert undone by the delete that follows it (the
    applier's undo of an insert that raced a local transaction: bridge/apply.py)."""
    net = list(ops)
    for i in range(len(net) - 1):
        if net[i] == "INSERT" and net[i + 1] == "DELETE":
            return len(net) - 2
    return len(net)


def _absent(history: list[tuple[dt.datetime, str]], applied_at: dt.datetime) -> bool:
    """Was the row absent when the delete arrived? Its last write before then deleted it,
    or it had none."""
    before = [op for at, op in history if at < applied_at]
    return not before or before[-1] == "DELETE"
