"""A RabbitMQ node stopped and restarted while events flow: nothing lost, all converge."""

from __future__ import annotations

import pytest

from bridge import verify
from tests.conftest import converged, db_of, outbox_empty, rows, running, sql, wait_for
from tests.faults.conftest import cluster, writers

pytestmark = pytest.mark.faults


def counts(cfgs):
    return {c.site: sql(db_of(c), "SELECT count(*) FROM orders")[0][0] for c in cfgs}


@pytest.mark.parametrize("how", ["stop-node", "kill-node"])
def test_one_node_lost_while_events_flow(sites, how):
    cfgs = list(sites.values())
    per_site = 300
    try:
        with running(*cfgs) as bridges, writers(cfgs, per_site) as ws:
            wait_for(lambda: all(len(w.written) > 50 for w in ws), 60, "writes under way")
            wait_for(lambda: sum(counts(cfgs).values()) > 100, 60, "events flowing")
            cluster(how, "1")
            wait_for(lambda: all(len(w.written) > 150 for w in ws), 120, "writes during the loss")
            cluster("start-node", "1")
            for w in ws:
                w.join(300)
            total = sum(len(w.written) for w in ws)
            assert total == 3 * per_site
            wait_for(
                lambda: all(n == total for n in counts(cfgs).values()),
                180,
                f"all {total} rows at every site",
            )
            wait_for(lambda: converged(cfgs), 60, "identical rows")
            wait_for(lambda: all(outbox_empty(c) for c in cfgs), 120, "outboxes drained")
            archived = sql(db_of(sites["PARIS"]), "SELECT count(*) FROM bridge_archive")[0][0]
            expected_events = 3 * (per_site + per_site // 5)
            wait_for(
                lambda: (
                    sql(db_of(sites["PARIS"]), "SELECT count(*) FROM bridge_archive")[0][0]
                    == expected_events
                ),
                120,
                f"{expected_events} events archived",
            )
            stats = {s: b.stats.snapshot() for s, b in bridges.items()}
    finally:
        cluster("start-node", "1")
    peers = {c.site: c.database_url for c in cfgs[1:]}
    _, differing = verify.verify(cfgs[0], peers)
    assert differing == []
    for c in cfgs:
        applied = sql(db_of(c), "SELECT count(*), count(DISTINCT event_id) FROM bridge_inbox")[0]
        assert applied[0] == applied[1] == 2 * (per_site + per_site // 5)  # other two sites
    print(
        f"\n{how}: rows per site {counts(cfgs)}, archived {archived}, lost 0, "
        f"applied twice 0, stats {stats}"
    )
    assert len(rows(cfgs[0])) == 3 * per_site
