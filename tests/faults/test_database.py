"""The bridge's database connections killed mid-batch (pg_terminate_backend), repeatedly,
while the applications keep writing: it reconnects, nothing is lost or applied twice."""

from __future__ import annotations

import pytest

from bridge import verify
from tests.conftest import converged, db_of, outbox_empty, running, sql, wait_for
from tests.faults.conftest import writers

pytestmark = pytest.mark.faults

KILL = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE application_name = 'bridge' AND datname = %s AND pid <> pg_backend_pid()"
)


def test_connections_killed_mid_batch(sites):
    cfgs = list(sites.values())
    per_site = 200
    killed = 0
    with running(*cfgs) as bridges, writers(cfgs, per_site) as ws:
        for round_ in range(6):
            wait_for(
                lambda r=round_: all(len(w.written) >= (r + 1) * per_site // 7 for w in ws),
                120,
                "writes progressing",
            )
            for c in cfgs:
                killed += sql("postgres", KILL, db_of(c))[0][0]
        for w in ws:
            w.join(300)
        total = 3 * per_site
        wait_for(
            lambda: all(sql(db_of(c), "SELECT count(*) FROM orders")[0][0] == total for c in cfgs),
            180,
            f"{total} rows everywhere",
        )
        wait_for(
            lambda: converged(cfgs) and all(outbox_empty(c) for c in cfgs),
            120,
            "convergence and drained outboxes",
        )
        stats = {s: b.stats.snapshot() for s, b in bridges.items()}
    assert killed >= 18  # every round killed the dispatcher's and consumer's sessions
    _, differing = verify.verify(cfgs[0], {c.site: c.database_url for c in cfgs[1:]})
    assert differing == []
    events_per_site = per_site + per_site // 5
    for c in cfgs:
        n, distinct = sql(db_of(c), "SELECT count(*), count(DISTINCT event_id) FROM bridge_inbox")[
            0
        ]
        assert n == distinct == 2 * events_per_site
    print(f"\nkilled {killed} database sessions; lost 0; applied twice 0; stats {stats}")
