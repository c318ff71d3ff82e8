"""`bridge bootstrap` killed with SIGKILL in the middle of its copy, as a real process:
run again, it resumes after the last chunk it committed and copies only the rest; then the
new site's bridge applies what its queue kept and `bridge verify` passes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    ORDERS_DDL,
    ROOT,
    converged,
    db_of,
    env_of,
    outbox_empty,
    running,
    sql,
    wait_for,
)
from tests.joining import (
    apply_four_site_topology,
    drop_rome_queue,
    make_rome,
    peer_args,
    rome_user,  # noqa: F401 - fixture
    seed,
    verified,
)

pytestmark = pytest.mark.faults

ROWS = 20_000
COPIED = re.compile(r"orders: ([\d,]+) rows, ([\d,]+) tombstones copied")


def progress(cfg) -> dict:
    found = sql(db_of(cfg), "SELECT value FROM bridge_meta WHERE key = 'bootstrap'")
    return found[0][0] if found else {}


def test_bootstrap_killed_mid_copy_resumes(sites, rome_user, request, tmp_path: Path):  # noqa: F811
    drop_rome_queue()
    cfgs = list(sites.values())
    paris, london = sites["PARIS"], sites["LONDON"]
    rome = make_rome(request, ORDERS_DDL)
    seed(paris, range(1, ROWS + 1))
    command = [sys.executable, "-m", "bridge", "bootstrap", *peer_args(paris)]
    command += ["--chunk-rows", "100"]
    with running(*cfgs):
        wait_for(lambda: converged(cfgs), 120, "the seed at every site")
        apply_four_site_topology()
        log = tmp_path / "bootstrap.1.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                command, env=env_of(rome), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )
        try:
            wait_for(
                lambda: progress(rome).get("copied", 0) >= 2_000 or proc.poll() is not None,
                120,
                "the copy under way",
            )
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == -signal.SIGKILL, log.read_text()
        state = progress(rome)
        kept = sql(db_of(rome), "SELECT count(*) FROM orders")[0][0]
        assert not state["finished"] and state["table"] == "orders", state
        assert kept == state["copied"] < ROWS, (kept, state)
        assert sql(db_of(rome), "SELECT max(id) FROM orders")[0][0] == state["after"]["id"]

        # changes made while ROME is half-copied: in its queue, applied once it runs
        sql(db_of(london), "UPDATE orders SET note = 'after the kill' WHERE id <= 10")
        sql(db_of(london), "DELETE FROM orders WHERE id IN (11, 12)")

        again = subprocess.run(
            command, env=env_of(rome), capture_output=True, text=True, cwd=ROOT, timeout=600
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert "resuming the bootstrap from PARIS" in again.stderr, again.stderr
        found = COPIED.search(again.stdout)
        assert found, again.stdout
        assert int(found.group(1).replace(",", "")) == ROWS - kept, again.stdout
        assert sql(db_of(rome), "SELECT count(*) FROM orders")[0][0] >= ROWS - 2
        assert progress(rome)["finished"] is True

        with running(rome):
            everyone = [*cfgs, rome]
            wait_for(lambda: converged(everyone), 120, "all four sites holding the same rows")
            wait_for(lambda: all(outbox_empty(c) for c in everyone), 60, "outboxes empty")
    assert verified([rome, *cfgs]) == []
    notes = sql(db_of(rome), "SELECT count(*) FROM orders WHERE note = 'after the kill'")
    assert notes[0][0] == 10
    assert json.loads(json.dumps(progress(rome)))["copied"] == ROWS
