"""The race of tests/integration/test_concurrent_writers.py in a mixed federation: PARIS on
PostgreSQL, LONDON and MADRID on MariaDB. Every site's application (a pool of connections)
changes the same hot rows while its applier applies the other sites' changes of them on
its own connection; after each round `bridge verify` is the judge, and no change may have
been refused ("cannot apply")."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pymysql
import pytest

from bridge import verify
from bridge.config import Config
from tests import dbs
from tests.conftest import running, wait_for
from tests.federation import app_sql, count, db_of, dialect_of, make_federation, same_rows

pytestmark = pytest.mark.integration

HOT = 30
CONNECTIONS = 3
RATE = 40.0
SECONDS = 10.0
ROUNDS = int(os.environ.get("BRIDGE_RACE_ROUNDS", "2"))

SQL = {
    "postgresql": {
        "update": "UPDATE orders SET customer = %s, amount = amount + 1, note = %s, "
        "updated_at = clock_timestamp() WHERE id IN ({ids})",
        "upsert": "INSERT INTO orders (id, customer, amount, updated_at) "
        "VALUES (%s, %s, 1, clock_timestamp()) ON CONFLICT (id) DO UPDATE SET "
        "customer = EXCLUDED.customer, amount = orders.amount + 1, note = NULL, "
        "updated_at = EXCLUDED.updated_at",
        "sleep": "SELECT pg_sleep(%s)",
    },
    "mariadb": {
        "update": "UPDATE orders SET customer = %s, amount = amount + 1, note = %s, "
        "updated_at = UTC_TIMESTAMP(6) WHERE id IN ({ids})",
        "upsert": "INSERT INTO orders (id, customer, amount, updated_at) "
        "VALUES (%s, %s, 1, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE "
        "customer = VALUES(customer), amount = amount + 1, note = NULL, "
        "updated_at = VALUES(updated_at)",
        "sleep": "SELECT SLEEP(%s)",
    },
}
# what each database rolls back to break a deadlock or a lock wait: the application retries
RETRIED_PG = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
RETRIED_MARIADB = {1213, 1205}


class Writer(threading.Thread):
    def __init__(self, cfg: Config, n: int, seed: int, round_: int, stop: threading.Event):
        super().__init__(daemon=True, name=f"writer-{cfg.site}-{n}")
        self.cfg, self.n, self.stop = cfg, n, stop
        self.dialect = dialect_of(cfg)
        self.base = 1_000_000 * (1 + round_) + 100_000 * cfg.sites.index(cfg.site) + 10_000 * n
        self.random = random.Random(seed)
        self.done: Counter[str] = Counter()
        self.error: BaseException | None = None
        self.fresh = 0

    def run(self) -> None:
        try:
            with dbs.connection(self.dialect, db_of(self.cfg)) as conn:
                next_at = time.monotonic()
                while not self.stop.is_set():
                    what, text, params = self.change()
                    while not self._transaction(conn, text, params):
                        self.done["retried"] += 1
                    self.done[what] += 1
                    next_at += self.random.expovariate(RATE / CONNECTIONS)
                    self.stop.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def _transaction(self, conn: Any, text: str, params: tuple[Any, ...]) -> bool:
        """One transaction: the change, then up to 20 ms of the application's own work with
        the row locks held; False if the database rolled it back for a deadlock."""
        pause = (self.random.random() / 50,)
        if self.dialect == "postgresql":
            try:
                with conn.transaction():
                    conn.execute(text, params)
                    conn.execute(SQL["postgresql"]["sleep"], pause)
                return True
            except RETRIED_PG:
                return False
        try:
            conn.begin()
            cur = conn.cursor()
            cur.execute(text, params)
            cur.execute(SQL["mariadb"]["sleep"], pause)
            conn.commit()
            return True
        except pymysql.err.OperationalError as exc:
            conn.rollback()
            if exc.args[0] in RETRIED_MARIADB:
                return False
            raise

    def change(self) -> tuple[str, str, tuple[Any, ...]]:
        tag = f"{self.cfg.site}/{self.n}/{self.random.randrange(10**6)}"
        ids = sorted(self.random.sample(range(1, HOT + 1), self.random.randint(1, 3)))
        roll = self.random.random()
        statements = SQL[self.dialect]
        if roll < 0.80:
            marks = ", ".join(["%s"] * len(ids))
            return "update", statements["update"].format(ids=marks), (tag, tag, *ids)
        if roll < 0.90:
            return "upsert", statements["upsert"], (ids[0], tag)
        if roll < 0.95:
            return "delete", "DELETE FROM orders WHERE id = %s", (ids[0],)
        self.fresh += 1
        return (
            "insert",
            "INSERT INTO orders (id, customer, amount) VALUES (%s, %s, 0)",
            (self.base + self.fresh, tag),
        )


def write_round(cfgs: list[Config], seed: int, round_: int) -> Counter[str]:
    stop = threading.Event()
    writers = [
        Writer(cfg, n, seed * 1000 + 10 * i + n, round_, stop)
        for i, cfg in enumerate(cfgs)
        for n in range(CONNECTIONS)
    ]
    for w in writers:
        w.start()
    stop.wait(SECONDS)
    stop.set()
    total: Counter[str] = Counter()
    for w in writers:
        w.join(30)
        assert not w.is_alive(), f"{w.name} did not stop"
        assert w.error is None, f"{w.name} failed: {w.error!r}"
        total.update(w.done)
    return total


@pytest.fixture
def fed(fresh_topology: Any) -> list[Config]:
    return list(make_federation("cw_mixed", "mariadb").values())


def test_postgresql_and_mariadb_sites_writing_the_same_rows_converge(fed: list[Config]) -> None:
    for i in range(1, HOT + 1):
        app_sql(fed[0], "INSERT INTO orders (id, customer, amount) VALUES (%s, 'seed', 0)", i)
    seed = int(os.environ.get("BRIDGE_FAULT_SEED", random.randrange(10**6)))
    print(f"seed {seed} (BRIDGE_FAULT_SEED repeats it)")
    peers = {c.site: c.database_url for c in fed[1:]}
    with running(*fed):
        wait_for(lambda: all(count(c, "orders") == HOT for c in fed), 60, "the seed rows")
        for round_ in range(ROUNDS):
            done = write_round(fed, seed + round_, round_)
            wait_for(
                lambda: all(count(c, "bridge_outbox") == 0 for c in fed) and same_rows(fed),
                180,
                "every change echoed back and the sites equal",
                interval=0.5,
            )
            sums, differing = verify.verify(fed[0], peers)
            reasons = {
                c.site: [r for (r,) in app_sql(c, "SELECT reason FROM bridge_conflicts")]
                for c in fed
            }
            print(f"round {round_ + 1}: {dict(done)}; rows {count(fed[0], 'orders')}")
            print(f"  conflicts logged: { {s: len(r) for s, r in reasons.items()} }")
            assert differing == [], f"round {round_ + 1}: sites differ: {sums}"
            cannot = [(s, r) for s, rs in reasons.items() for r in rs if r.startswith("cannot")]
            assert cannot == [], cannot
