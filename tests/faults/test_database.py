"""The database goes away under the bridges while the applications keep writing: their
sessions killed mid-batch (pg_terminate_backend), again and again, then the PostgreSQL
server restarted. The bridges reconnect; nothing is lost or applied twice."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.conftest import db_of, sql, wait_for
from tests.faults.conftest import writers
from tests.faults.harness import count, finish, install_audit, processes

pytestmark = pytest.mark.faults

KILL = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE application_name = 'bridge' AND datname = %s AND pid <> pg_backend_pid()"
)


def inbox(cfg) -> int:
    n: int = sql(db_of(cfg), "SELECT count(*) FROM bridge_inbox")[0][0]
    return n


def sessions(cfg) -> int:
    """The bridge's database sessions at a site."""
    n: int = sql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bridge' AND datname = %s",
        db_of(cfg),
    )[0][0]
    return n


def restart_postgres() -> None:
    """Restart the local PostgreSQL server (fast shutdown: every session is cut)."""
    version = sorted(Path("/etc/postgresql").iterdir(), key=lambda p: int(p.name))[-1].name
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def answers(query) -> bool:
    try:
        return bool(query())
    except psycopg.OperationalError:
        return False


def test_sessions_killed_mid_batch(sites, tmp_path):
    cfgs = list(sites.values())
    install_audit(cfgs)
    killed = 0
    with processes(cfgs, tmp_path) as procs, writers(cfgs, 1_000_000, pace=0.01) as ws:
        for _ in range(8):
            n = {c.site: inbox(c) for c in cfgs}
            wait_for(lambda n=n: all(inbox(c) >= n[c.site] + 40 for c in cfgs), 120, "applying")
            # the dispatcher reconnects with a backoff: kill when both are back, each time
            wait_for(lambda: all(sessions(c) >= 2 for c in cfgs), 120, "bridge sessions back")
            for c in cfgs:
                killed += sql("postgres", KILL, db_of(c))[0][0]
        finish(cfgs, procs, ws, f"{killed} bridge sessions killed")
    assert killed >= 8 * 3 * 2  # at least the dispatcher's and the consumer's, each time


def test_database_server_restarted(sites, tmp_path):
    cfgs = list(sites.values())
    install_audit(cfgs)
    with processes(cfgs, tmp_path) as procs, writers(cfgs, 1_000_000, pace=0.01) as ws:
        for _ in range(2):
            n = {c.site: inbox(c) for c in cfgs}
            wait_for(
                lambda n=n: answers(lambda: all(inbox(c) >= n[c.site] + 100 for c in cfgs)),
                120,
                "applying",
            )
            restart_postgres()
        wait_for(lambda: answers(lambda: all(count(c) > 0 for c in cfgs)), 60, "database back")
        refused = sum(w.failures for w in ws)
        finish(cfgs, procs, ws, f"PostgreSQL restarted twice, {refused} writes refused meanwhile")
