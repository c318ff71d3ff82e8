"""Fault-test helpers: drive the real cluster through scripts/cluster, and applications
that keep writing while things break."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from bridge.config import Config
from tests.conftest import ROOT, db_of, sql


def cluster(*args: str) -> str:
    done = subprocess.run(
        [str(ROOT / "scripts" / "cluster"), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.stdout


class Writer(threading.Thread):
    """A legacy application: single-row transactions at one site, ids from a range; every
    `op_every`-th row is updated once after its insert, every `delete_every`-th deleted.
    `events` counts the changes made (each is one event to propagate), `written` the rows
    that stay."""

    def __init__(
        self,
        cfg: Config,
        ids: range,
        op_every: int = 5,
        pace: float = 0.005,
        delete_every: int = 7,
    ) -> None:
        super().__init__(daemon=True)
        self.cfg, self.ids, self.op_every, self.pace = cfg, ids, op_every, pace
        self.delete_every = delete_every
        self.stop = threading.Event()
        self.written: list[int] = []
        self.events = 0
        self.failures = 0  # statements refused while the database was away

    def run(self) -> None:
        db = db_of(self.cfg)
        for i in self.ids:
            if self.stop.is_set():
                return
            # idempotent statements, retried while the database is away: a retry after a
            # commit whose answer was lost changes nothing, and the change counts once
            if not self._until_done(
                db,
                "INSERT INTO orders (id, customer, amount) VALUES (%s, %s, %s) "
                "ON CONFLICT (id) DO NOTHING",
                i,
                self.cfg.site,
                i % 1000,
            ):
                return
            self.events += 1
            if i % self.op_every == 0:
                if not self._until_done(
                    db,
                    "UPDATE orders SET note = 'touched' WHERE id = %s "
                    "AND note IS DISTINCT FROM 'touched'",
                    i,
                ):
                    return
                self.events += 1
            if i % self.delete_every == 0:
                if not self._until_done(db, "DELETE FROM orders WHERE id = %s", i):
                    return
                self.events += 1
            else:
                self.written.append(i)
            self.stop.wait(self.pace)

    def _until_done(self, db: str, query: str, *params: object) -> bool:
        """Run the statement until it succeeds (True), or until stopped (False)."""
        while True:
            try:
                sql(db, query, *params)
                return True
            except psycopg.OperationalError:
                self.failures += 1
                if self.stop.wait(0.2):
                    return False


@contextmanager
def writers(cfgs: list[Config], per_site: int, pace: float = 0.005) -> Iterator[list[Writer]]:
    """One writer per site, ids n*1e6+1.. for the n-th site; stopped (and joined) on exit."""
    ws = [
        Writer(c, range(n * 1_000_000 + 1, n * 1_000_000 + per_site + 1), pace=pace)
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
