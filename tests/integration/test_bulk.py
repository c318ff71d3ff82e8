"""The set-based apply (bridge/bulk.py) decides and writes exactly as the one-by-one apply.

Two copies of one site, in the same state (rows written by its application with their
changes still in the outbox, rows applied from other sites with their versions, a
tombstone), receive the same batches: one applies them one event at a time (the path a
batch takes after a refusal, every event alone), the other with `Applier.apply_batch`
(runs set-based). Batches mix inserts of absent and present rows, updates, deletes of
present and absent rows, changes older than the row's version (conflicts), older changes
of the same writer (superseded), duplicates inside a batch and of earlier batches, the
same row twice in a batch, and this site's own echoes. Outcomes, rows, versions, inbox and
conflict log must be the same.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from bridge import wire
from bridge.apply import Applier
from bridge.dialects import for_url
from bridge.dispatcher import message
from bridge.event import Event
from tests.conftest import DB_PREFIX, create_site_db, make_config, setup_site, sql
from tests.integration.test_sync import event_body

pytestmark = pytest.mark.integration

# events straddle the moment the site's own changes are made (pending in its outbox): some
# older (they lose), some newer (they win, logged as overwriting a concurrent change)
BASE = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=500)
KEYS = range(1, 13)


def stamp(seconds: float) -> str:
    return (BASE + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(origin: str, key: int, op: str, at: float, id_: str | None = None, **row: Any) -> Event:
    body = event_body(origin, id_, key=key, ts=stamp(at), op=op, **row)
    return wire.decode(body)[0]


def one_by_one(applier: Applier, events: list[Event]) -> list[Any]:
    """Every event alone, in a savepoint (the path of a batch the database refused once)."""
    return applier._run(events, savepoints=True)


def state(db: str) -> dict[str, Any]:
    return {
        "rows": sql(db, "SELECT * FROM orders ORDER BY id"),
        "versions": sql(
            db,
            "SELECT table_name, row_key::text, ts, origin, deleted, event_id::text "
            "FROM bridge_row_version ORDER BY 1, 2",
        ),
        "inbox": sql(db, "SELECT event_id::text, origin FROM bridge_inbox ORDER BY 1"),
        "conflicts": sql(
            db,
            "SELECT event_id::text, row_key::text, reason, local_ts, local_origin, "
            "local_row::text FROM bridge_conflicts ORDER BY 1, 3",
        ),
        "outbox": sql(db, "SELECT event_id::text, type FROM bridge_outbox ORDER BY seq"),
    }


def prepare(db: str, history: list[Event]) -> None:
    create_site_db(db)
    cfg = make_config("MADRID", db)
    setup_site(cfg)
    applier = Applier(cfg, for_url(cfg.database_url))
    one_by_one(applier, history)  # rows 5..9 from other sites; 9 deleted since
    applier.close()
    # the application's own rows: changes still in the outbox (pending)
    sql(db, "INSERT INTO orders (id, customer) VALUES (1, 'madrid'), (2, 'madrid'), (3, 'm')")
    sql(db, "UPDATE orders SET customer = 'madrid, later' WHERE id = 6")


def copies(history: list[Event], *dbs: str) -> list[Applier]:
    """The site prepared in the first database, copied to the others (the same stamps and
    event ids in their outboxes); an Applier on each."""
    prepare(dbs[0], history)
    for db in dbs[1:]:
        sql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        sql("postgres", f'CREATE DATABASE "{db}" TEMPLATE "{dbs[0]}"')
    return [
        Applier(make_config("MADRID", db), for_url(make_config("MADRID", db).database_url))
        for db in dbs
    ]


def batches(seed: int, history: list[Event]) -> list[list[Event]]:
    rnd = random.Random(seed)
    sent: list[Event] = list(history)
    out = []
    for _ in range(4):
        batch: list[Event] = []
        for _ in range(rnd.randint(10, 40)):
            kind = rnd.random()
            if kind < 0.08 and sent:  # a duplicate (of this batch or an earlier one)
                batch.append(rnd.choice(sent + batch))
                continue
            origin = rnd.choice(["LONDON", "PARIS"])
            key = rnd.choice(KEYS)
            op = rnd.choice(["insert", "update", "update", "delete"])
            # mostly newer than everything so far, sometimes older (conflicts, superseded)
            at = rnd.uniform(-50, 10) if rnd.random() < 0.25 else 100 + rnd.uniform(0, 1000)
            e = event(origin, key, op, at, customer=f"{origin} {key} {at:.3f}")
            batch.append(e)
        out.append(batch)
        sent += batch
    return out


@pytest.mark.parametrize("seed", range(6))
def test_set_based_apply_is_the_one_by_one_apply(seed: int) -> None:
    history = [event("LONDON", k, "insert", k, customer=f"london {k}") for k in (5, 6, 7, 8, 9)] + [
        event("PARIS", 9, "delete", 20)
    ]
    dbs = [f"{DB_PREFIX}bulk_{name}_{seed}" for name in ("alone", "set")]
    alone, bulk = copies(history, *dbs)
    try:
        assert state(dbs[0])["rows"] == state(dbs[1])["rows"]
        # this site's own change coming back, in the middle of a batch
        own = sql(
            dbs[0],
            "SELECT seq, event_id::text, created_at, origin, type, payload::text "
            "FROM bridge_outbox ORDER BY seq LIMIT 1",
        )[0]
        echo = wire.decode(message(own, "madrid")[0])[0]
        seen: set[str] = set()
        for n, batch in enumerate(batches(seed, history)):
            if n == 1:
                batch.insert(len(batch) // 2, echo)
            expected = one_by_one(alone, batch)
            got = bulk.apply_batch(batch)
            assert got == expected, f"batch {n}"
            assert state(dbs[1]) == state(dbs[0]), f"batch {n}"
            seen |= {o.status for o in got}
        # what the comparison covered, every seed: the batches are long enough for each
        assert {"applied", "duplicate", "conflict", "echo"} <= seen, seen
    finally:
        alone.close()
        bulk.close()
        for db in dbs:
            sql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_a_large_run_applies_set_based_in_one_batch() -> None:
    """2,000 inserts and then 2,000 updates of one table: every one applied, once."""
    db = f"{DB_PREFIX}bulk_large"
    (applier,) = copies([], db)
    try:
        inserts = [event("LONDON", k, "insert", 100 + k / 1000, note="n") for k in range(10, 2010)]
        updates = [event("PARIS", k, "update", 200 + k / 1000, note="u") for k in range(10, 2010)]
        assert {o.status for o in applier.apply_batch(inserts)} == {"applied"}
        assert {o.status for o in applier.apply_batch(updates + updates[:5])} == {
            "applied",
            "duplicate",
        }
        assert sql(
            db, "SELECT count(*), count(*) FILTER (WHERE note = 'u') FROM orders WHERE id >= 10"
        ) == [(2000, 2000)]
        assert sql(db, "SELECT count(*) FROM bridge_inbox")[0][0] == 4000
        assert sql(db, "SELECT count(*) FROM bridge_row_version WHERE origin = 'PARIS'") == [
            (2000,)
        ]
    finally:
        applier.close()
        sql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
