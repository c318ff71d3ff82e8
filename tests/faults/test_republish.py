"""When republishing is the recovery: messages the broker confirmed that this site's own
queue does not hold. Its echoes never come, and the dispatcher must publish those rows
again, on the evidence that the consumer took every message confirmed after them (a later
echo), or found the queue empty (the lost ones were the last). Here the own queue is
unbound from `bridge.events` while the site writes: the other queues get the messages,
the broker confirms them, the own queue never sees them.

(The other recoveries: a publish whose confirm never came, a node or the whole cluster
stopped, is published again by the dispatcher's next session: tests/faults/test_broker.py
shows every such event arriving, with the dispatcher's counters.)"""

from __future__ import annotations

import pytest

from bridge import status, verify
from bridge.broker import EVENTS_EXCHANGE
from bridge.dialects import for_url
from tests.conftest import converged, db_of, outbox_empty, rows, running, sql, wait_for

pytestmark = pytest.mark.faults

LOST = 300


def published(cfg) -> int:
    return sql(db_of(cfg), "SELECT count(*) FROM bridge_outbox WHERE published_at IS NOT NULL")[0][
        0
    ]


@pytest.mark.parametrize("evidence", ["a later echo", "the queue found empty"])
def test_messages_the_own_queue_lost_are_published_again(sites, fresh_topology, evidence):
    cfgs = list(sites.values())
    paris = sites["PARIS"]
    with running(*cfgs) as bridges:
        fresh_topology.queue_unbind(paris.queue, EVENTS_EXCHANGE)
        sql(
            db_of(paris),
            "INSERT INTO orders (id, customer) SELECT i, 'lost' FROM generate_series(1, %s) i",
            LOST,
        )
        # confirmed (the other queues hold them), their echoes cannot come
        wait_for(lambda: published(paris) == LOST, 60, f"the {LOST} rows confirmed")
        fresh_topology.queue_bind(paris.queue, EVENTS_EXCHANGE)
        if evidence == "a later echo":
            sql(db_of(paris), "INSERT INTO orders (id, customer) VALUES (0, 'after')")
        wait_for(
            lambda: outbox_empty(paris) and converged(cfgs),
            120,
            "every lost row published again and echoed",
        )
        stats = bridges[paris.site].stats.snapshot()
    print(f"\n{evidence}: PARIS {stats}")
    assert len(rows(paris)) == LOST + (evidence == "a later echo")
    # every lost row again, at least once; no flood (a row lost again waits longer)
    assert LOST <= stats.get("republished", 0) <= 3 * LOST, stats
    _, differing = verify.verify(paris, {c.site: c.database_url for c in cfgs[1:]})
    assert differing == []
    # what `bridge status` shows: the counters the dispatcher kept, and a warning (half of
    # what was confirmed had to be published again)
    dialect = for_url(paris.database_url)
    with dialect.connect(paris.database_url) as conn:
        state = status.read(dialect, conn)
    assert state.dispatcher["republished"] == stats["republished"], state
    assert state.dispatcher["sent"] >= state.dispatcher["confirmed"] >= LOST * 2, state
    assert state.warnings() and "published again" in state.warnings()[0]
