"""Faults at a MariaDB site of a mixed federation (PARIS on PostgreSQL, LONDON and MADRID
on MariaDB): its bridge killed with SIGKILL again and again, its database server
restarted, the site offline for a while and back, while the applications of every site
keep writing. After each: every site holds the same rows (`bridge verify`), every row
written is there, and each site applied exactly the changes the other sites made (its
inbox holds one entry per event of the others: nothing lost, nothing applied twice)."""

from __future__ import annotations

import random
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bridge import verify
from bridge.config import Config
from tests.conftest import ROOT, wait_for
from tests.faults.harness import processes
from tests.federation import app_sql, count, dialect_of, make_federation, same_rows

pytestmark = pytest.mark.faults

# idempotent statements per dialect: a retry after a commit whose answer was lost changes
# nothing, so each change counts once
INSERT = {
    "postgresql": "INSERT INTO orders (id, customer, amount) VALUES (%s, %s, %s) "
    "ON CONFLICT (id) DO NOTHING",
    "mariadb": "INSERT IGNORE INTO orders (id, customer, amount) VALUES (%s, %s, %s)",
}
TOUCH = {
    "postgresql": "UPDATE orders SET note = 'touched' WHERE id = %s "
    "AND note IS DISTINCT FROM 'touched'",
    "mariadb": "UPDATE orders SET note = 'touched' WHERE id = %s AND NOT note <=> 'touched'",
}


class Writer(threading.Thread):
    """An application at one site: single-row transactions, every 5th row updated once,
    every 7th deleted; retried while its database is away. `events` counts its changes."""

    def __init__(self, cfg: Config, ids: range, pace: float) -> None:
        super().__init__(daemon=True)
        self.cfg, self.ids, self.pace = cfg, ids, pace
        self.dialect = dialect_of(cfg)
        self.stop = threading.Event()
        self.written: list[int] = []
        self.events = 0
        self.failures = 0

    def run(self) -> None:
        for i in self.ids:
            if not self._until_done(INSERT[self.dialect], i, self.cfg.site, i % 1000):
                return
            self.events += 1
            if i % 5 == 0:
                if not self._until_done(TOUCH[self.dialect], i):
                    return
                self.events += 1
            if i % 7 == 0:
                if not self._until_done("DELETE FROM orders WHERE id = %s", i):
                    return
                self.events += 1
            else:
                self.written.append(i)
            if self.stop.wait(self.pace):
                return

    def _until_done(self, query: str, *params: Any) -> bool:
        while True:
            try:
                app_sql(self.cfg, query, *params)
                return True
            except Exception:  # noqa: BLE001 - the database is away: the application retries
                self.failures += 1
                if self.stop.wait(0.2):
                    return False


@contextmanager
def writers(cfgs: list[Config], per_site: int, pace: float) -> Iterator[list[Writer]]:
    ws = [
        Writer(c, range(n * 1_000_000 + 1, n * 1_000_000 + per_site + 1), pace)
        for n, c in enumerate(cfgs)
    ]
    for w in ws:
        w.start()
    try:
        yield ws
    finally:
        for w in ws:
            w.stop.set()
            w.join(60)


def settled(cfgs: list[Config], ws: list[Writer], timeout: float = 240) -> None:
    """Wait for the writers to finish, then for every site to hold every row and to have
    applied every change of the others; then check it exactly."""
    for w in ws:
        w.join(600)
        assert not w.is_alive(), f"{w.cfg.site}'s writer did not finish"
    rows = sum(len(w.written) for w in ws)
    events = {w.cfg.site: w.events for w in ws}
    total = sum(events.values())

    def done() -> bool:
        return all(
            count(c, "orders") == rows and count(c, "bridge_inbox") == total - events[c.site]
            for c in cfgs
        )

    wait_for(done, timeout, f"every site holding {rows} rows and {total} events applied")
    wait_for(lambda: same_rows(cfgs), 60, "the same rows everywhere")
    wait_for(lambda: all(count(c, "bridge_outbox") == 0 for c in cfgs), 60, "outboxes drained")
    sums, differing = verify.verify(cfgs[0], {c.site: c.database_url for c in cfgs[1:]})
    assert differing == [], sums
    print(
        f"\n{rows} rows at each site; events made: {events}; each site applied exactly "
        "the others' (inbox = their events)"
    )


@pytest.fixture
def fed(fresh_topology: Any, request: pytest.FixtureRequest) -> list[Config]:
    return list(make_federation(f"mf_{request.node.name[5:22]}", "mariadb").values())


def test_mariadb_bridges_killed_while_everyone_writes(fed, tmp_path):
    rng = random.Random(7)
    with processes(fed, tmp_path, republish_after=5) as procs, writers(fed, 400, 0.01) as ws:
        for _ in range(10):
            cfg = rng.choice(fed[1:])  # a MariaDB site
            target = count(cfg, "bridge_inbox") + rng.randint(1, 40)
            wait_for(
                lambda c=cfg, n=target: (
                    count(c, "bridge_inbox") >= n or all(not w.is_alive() for w in ws)
                ),
                120,
                f"{cfg.site} applying",
            )
            procs[cfg.site].kill()
            procs[cfg.site].start()
        settled(fed, ws)
        assert sum(p.kills for p in procs.values()) == 10


def mariadb(action: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "mariadb"), action], check=True, timeout=120)


def test_mariadb_server_restarted_while_everyone_writes(fed, tmp_path):
    try:
        with processes(fed, tmp_path, republish_after=5) as procs, writers(fed, 300, 0.01) as ws:
            wait_for(lambda: count(fed[1], "bridge_inbox") > 50, 60, "LONDON applying")
            mariadb("restart")
            wait_for(lambda: count(fed[1], "bridge_inbox") > 150, 120, "LONDON applying again")
            settled(fed, ws)
            assert all(p.alive() for p in procs.values()), "a bridge gave up on its database"
        assert sum(w.failures for w in ws[1:]) > 0, "the restart was not seen by the writers"
    finally:
        mariadb("start")


def test_mariadb_site_offline_and_back(fed, tmp_path):
    with processes(fed, tmp_path, republish_after=5) as procs, writers(fed, 300, 0.01) as ws:
        london = procs["LONDON"]
        assert london.terminate() == 0
        wait_for(lambda: count(fed[0], "orders") > 300, 120, "the others writing meanwhile")
        behind = count(fed[1], "orders")
        london.start()
        london.wait_ready()
        settled(fed, ws)
        assert count(fed[1], "orders") > behind
