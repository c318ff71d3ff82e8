"""The broker breaks while the applications keep writing: one node stopped or killed, two
of three (quorum lost), the whole cluster stopped, HAProxy stopped. Publishing stalls
safely (the changes wait in the outbox), everything resumes when the broker is back,
nothing is lost or applied twice, and every site converges."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import wait_for
from tests.faults.conftest import cluster, writers
from tests.faults.harness import count, finish, install_audit, processes

pytestmark = pytest.mark.faults

Step = Callable[[], object]

SCENARIOS: dict[str, tuple[Step, Step, bool]] = {
    # name: (break, heal, changes must pile up in the outboxes meanwhile)
    # stop_app closes the node's client connections; its quorum queue members keep running
    # in the Erlang VM, so the queues keep their 3 replicas
    "stop-app-one-node": (
        lambda: cluster("stop-node", "1"),
        lambda: cluster("start-node", "1"),
        False,
    ),
    "kill-one-node": (lambda: cluster("kill-node", "2"), lambda: cluster("start-node", "2"), False),
    # two VMs killed: the queues lose their majority and the last node pauses itself
    # (pause_minority): nothing can be published or consumed until a node returns
    "quorum-lost": (
        lambda: (cluster("kill-node", "1"), cluster("kill-node", "2")),
        lambda: cluster("start-node", "1", "2"),
        True,
    ),
    # the 3 nodes and HAProxy stopped (each VM shut down): the whole broker is gone. (Not
    # kill -9 of all three at once: RabbitMQ 3.10 can then lose the last messages it
    # confirmed to one queue, see docs/operations.md "Limits")
    "whole-cluster-down": (lambda: cluster("stop"), lambda: cluster("start"), True),
    "haproxy-down": (lambda: cluster("stop-haproxy"), lambda: cluster("start-haproxy"), True),
}


def heal_all() -> None:
    """Whatever a failed test left behind: every node and HAProxy up again."""
    cluster("start-node", "1", "2", "3")
    cluster("start-haproxy")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_broker_outage_while_applications_write(sites, tmp_path, scenario):
    breaks, heals, piles_up = SCENARIOS[scenario]
    cfgs = list(sites.values())
    install_audit(cfgs)
    try:
        with (
            processes(cfgs, tmp_path, heartbeat=5) as procs,
            writers(cfgs, per_site=1_000_000, pace=0.01) as ws,
        ):
            wait_for(lambda: all(count(c) > 60 for c in cfgs), 60, "events flowing")
            breaks()
            backlog = {c.site: count(c, "bridge_outbox") for c in cfgs}
            if piles_up:
                # the applications go on committing; their changes wait in the outbox
                wait_for(
                    lambda: all(count(c, "bridge_outbox") >= backlog[c.site] + 150 for c in cfgs),
                    120,
                    "changes held in every outbox during the outage",
                )
            else:
                # other sites' events applied at every site (not the local writer's rows)
                n = {c.site: count(c, "bridge_inbox") for c in cfgs}
                wait_for(
                    lambda: all(count(c, "bridge_inbox") >= n[c.site] + 150 for c in cfgs),
                    120,
                    "events still flowing on the remaining nodes",
                )
            held = {c.site: count(c, "bridge_outbox") for c in cfgs}
            heals()
            finish(cfgs, procs, ws, f"{scenario}: outbox before/at heal {backlog} -> {held}")
    finally:
        heal_all()
