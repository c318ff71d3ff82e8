"""Fault-test helpers: drive the real cluster through scripts/cluster."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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
    """A legacy application: single-row transactions at one site, ids from a range."""

    def __init__(self, cfg, ids: range, op_every: int = 5) -> None:
        super().__init__(daemon=True)
        self.cfg, self.ids, self.op_every = cfg, ids, op_every
        self.stop = threading.Event()
        self.written: list[int] = []

    def run(self) -> None:
        db = db_of(self.cfg)
        for i in self.ids:
            if self.stop.is_set():
                return
            sql(
                db,
                "INSERT INTO orders (id, customer, amount) VALUES (%s, %s, %s)",
                i,
                self.cfg.site,
                i % 1000,
            )
            if i % self.op_every == 0:
                sql(db, "UPDATE orders SET note = 'touched' WHERE id = %s", i)
            self.written.append(i)
            self.stop.wait(0.005)


@contextmanager
def writers(cfgs, per_site: int) -> Iterator[list[Writer]]:
    ws = [
        Writer(c, range(n * 1_000_000 + 1, n * 1_000_000 + per_site + 1))
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
