"""kill -9 of the bridges while the applications keep writing: at random moments, and at
every failpoint (the windows between publish and confirm, confirm and mark, apply and
commit, commit and ack). Each killed bridge is restarted. Nothing is lost, nothing is
applied twice, every site converges, and the counts are printed."""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest

from bridge import verify
from tests.conftest import db_of, sql, wait_for
from tests.faults.conftest import writers
from tests.faults.harness import install_audit, processes, settle, tally

pytestmark = pytest.mark.faults

RANDOM_KILLS = 36
# probability of dying at each pass through the point: a pass per message for publish,
# per confirm frame or batch for the others
POINTS = {
    "dispatch.published": 0.02,
    "dispatch.confirmed": 0.2,
    "dispatch.marked": 0.2,
    "apply.statements": 0.2,
    "consume.applied": 0.2,
    "consume.acked": 0.2,
}


def inbox(cfg) -> int:
    n: int = sql(db_of(cfg), "SELECT count(*) FROM bridge_inbox")[0][0]
    return n


def test_bridges_killed_again_and_again(sites, tmp_path):
    cfgs = list(sites.values())
    install_audit(cfgs)
    seed = int(os.environ.get("BRIDGE_FAULT_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\nseed {seed} (BRIDGE_FAULT_SEED={seed} repeats the choices)")
    with (
        processes(cfgs, tmp_path, republish_after=5) as procs,
        writers(cfgs, per_site=1_000_000, pace=0.02) as ws,
    ):
        # at random moments: after a random number of further applies at that site
        for _ in range(RANDOM_KILLS):
            cfg = rng.choice(cfgs)
            before, more = inbox(cfg), rng.randint(1, 60)
            wait_for(lambda c=cfg, n=before + more: inbox(c) >= n, 120, f"{cfg.site} applying")
            p = procs[cfg.site]
            p.kill()
            p.start()
        # at each failpoint, at each site: restarted with the point armed, it dies there
        for point, chance in POINTS.items():
            for cfg in cfgs:
                p = procs[cfg.site]
                p.kill()
                p.start(failpoints=f"{point}={chance}", seed=rng.randrange(1 << 30))
                wait_for(lambda p=p: not p.alive(), 120, f"{cfg.site} dying at {point}")
                p.start()
        for w in ws:
            w.stop.set()
            w.join(60)
        rows = sum(len(w.written) for w in ws)
        events = sum(w.events for w in ws)
        settle(cfgs, rows, events)
        external = sum(p.kills for p in procs.values())
        at_points: Counter[str] = Counter()
        for p in procs.values():
            at_points.update(p.failpoint_kills())
    t = tally(cfgs, events, procs)
    print(
        f"kill -9: {external} by the test, {sum(at_points.values())} at failpoints "
        f"{dict(at_points)}"
    )
    print(t.line())
    t.check()
    assert set(at_points) == set(POINTS), at_points  # every point was really reached
    _, differing = verify.verify(cfgs[0], {c.site: c.database_url for c in cfgs[1:]})
    assert differing == []
