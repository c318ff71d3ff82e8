"""One site offline for a long time while every application keeps writing: its queue
grows, its own changes wait in its outbox; back online it catches up in each origin's
order (past the few messages its stopped consumer still held, which RabbitMQ returns in
another order), and every site converges."""

from __future__ import annotations

import pytest

from bridge import verify
from tests.conftest import db_of, sql, wait_for
from tests.faults.conftest import writers
from tests.faults.harness import count, depth, install_audit, processes, settle, tally

pytestmark = pytest.mark.faults

BACKLOG = 5000  # messages waiting in the offline site's queue before it comes back


def inversions(cfg, archive, origin: str, since, skip: int) -> int:
    """Events of `origin` that `cfg` applied after one of `origin`'s later changes, among
    what it received from `since` on, past its first `skip` deliveries (the messages a
    stopped consumer held unacknowledged go back to the queue and are delivered first, in
    another order: RabbitMQ 3.10, quorum queue with a delivery limit)."""
    applied = sql(
        db_of(cfg),
        "SELECT event_id::text, origin FROM bridge_inbox WHERE applied_at >= %s "
        "ORDER BY applied_at",
        since,
    )[skip:]
    stamped = sql(
        db_of(archive),
        "SELECT event_id::text FROM bridge_archive WHERE origin = %s ORDER BY ts",
        origin,
    )
    rank = {e: i for i, (e,) in enumerate(stamped)}
    order = [rank[e] for e, o in applied if o == origin]
    return sum(1 for a, b in zip(order, order[1:], strict=False) if b < a)


def test_site_offline_for_long_catches_up_in_order(sites, tmp_path):
    cfgs = list(sites.values())
    offline = sites["MADRID"]
    install_audit(cfgs)
    with processes(cfgs, tmp_path) as procs, writers(cfgs, 1_000_000, pace=0.01) as ws:
        wait_for(lambda: all(count(c) > 100 for c in cfgs), 60, "events flowing")
        assert procs[offline.site].terminate() == 0
        wait_for(
            lambda: depth(offline.queue) >= BACKLOG, 600, f"{BACKLOG} events queued", interval=1
        )
        queued, held = depth(offline.queue), count(offline, "bridge_outbox")
        back = sql(db_of(offline), "SELECT clock_timestamp()")[0][0]
        procs[offline.site].start()
        procs[offline.site].wait_ready()
        for w in ws:
            w.stop.set()
            w.join(60)
        events = sum(w.events for w in ws)
        settle(cfgs, sum(len(w.written) for w in ws), events, timeout=900)
    t = tally(cfgs, events, procs)
    archive = sites["PARIS"]
    out_of_order = {
        o.site: inversions(offline, archive, o.site, back, offline.prefetch)
        for o in cfgs
        if o is not offline
    }
    print(
        f"\n{offline.site} offline: {queued} events queued for it, {held} of its own changes "
        f"held in its outbox; out of order on catch-up {out_of_order}; {t.line()}"
    )
    t.check()
    assert out_of_order == {o.site: 0 for o in cfgs if o is not offline}
    _, differing = verify.verify(cfgs[0], {c.site: c.database_url for c in cfgs[1:]})
    assert differing == []
