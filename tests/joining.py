"""A fourth site, ROME, joining the three test sites (bridge bootstrap): its broker user,
its queue, its database, and applications that keep writing at the other sites."""

from __future__ import annotations

import os
import random
import subprocess
import threading
from typing import Any

import pika
import psycopg
import pytest

from bridge import config as config_mod
from bridge import topology, verify
from tests import dbs
from tests.conftest import (
    AMQP_ADMIN,
    ARCHIVE,
    DB_PREFIX,
    ROOT,
    SITES,
    VHOST,
    create_site_db,
    db_of,
    make_config,
    setup_site,
    sql,
)

ROME = "ROME"
FOUR = (*SITES, ROME)


@pytest.fixture(scope="session")
def rome_user(broker_users: None) -> None:
    """ROME's least-privilege broker user on the tests' vhost (idempotent)."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "cluster"), "add-site-user", ROME, "rome-secret"],
        env={**os.environ, "RABBITMQ_DEFAULT_VHOST": VHOST},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _admin(action: Any) -> Any:
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
    try:
        return action(conn.channel())
    finally:
        conn.close()


def drop_rome_queue() -> None:
    """No SITE_ROME from an earlier test: a test starts before ROME exists."""

    def drop(ch: Any) -> None:
        ch.queue_delete("SITE_ROME")
        ch.queue_delete("SITE_ROME.dlq")

    _admin(drop)


def rome_queue_state() -> str:
    """SITE_ROME's ready messages and consumers, for a failure message."""

    def look(ch: Any) -> str:
        ok = ch.queue_declare("SITE_ROME", passive=True).method
        return f"SITE_ROME: {ok.message_count} ready, {ok.consumer_count} consumer(s)"

    try:
        return str(_admin(look))
    except pika.exceptions.AMQPError as exc:
        return f"SITE_ROME: {exc!r}"


def apply_four_site_topology() -> None:
    """What the operator runs once ROME is in 'sites': `bridge topology apply` as admin."""
    _admin(lambda ch: topology.apply(ch, FOUR, ARCHIVE))


def make_rome(
    request: pytest.FixtureRequest, ddl: str, dialect: str = "postgresql", **over: Any
) -> config_mod.Config:
    """ROME's database on `dialect` with `ddl`, bridge initialised and capturing (empty
    tables)."""
    prefix = DB_PREFIX + request.node.name.replace("[", "_").replace("]", "")[:30].lower()
    db = f"{prefix}_rome"
    if dialect == "postgresql":
        create_site_db(db, ddl)
    else:
        dbs.create(dialect, db, ddl)
        over["database_url"] = dbs.url(dialect, db)
    cfg = make_config(ROME, db, sites=list(FOUR), **over)
    setup_site(cfg)
    return cfg


def peer_args(source: config_mod.Config) -> list[str]:
    return ["--from", source.site, "--peer", f"{source.site}={source.database_url}"]


def verified(cfgs: list[config_mod.Config], tables: list[str] | None = None) -> list[str]:
    """The tables that differ between the sites (`bridge verify`); [] when all agree."""
    first, *others = cfgs
    _sums, differing = verify.verify(first, {c.site: c.database_url for c in others})
    return differing


class Writers:
    """Applications at some sites: each thread inserts rows of its own id range, updates
    rows of every site (the seeded ones too: concurrent updates of one row at several
    sites, decided by last-writer-wins) and deletes some, until stopped."""

    def __init__(self, cfgs: list[config_mod.Config], shared: range, pace: float = 0.002):
        self.stop = threading.Event()
        self.changes = 0
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._write, args=(cfg, n, shared, pace), daemon=True)
            for n, cfg in enumerate(cfgs, start=1)
        ]

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def _write(self, cfg: config_mod.Config, n: int, shared: range, pace: float) -> None:
        rnd = random.Random(n)
        next_id = 1_000_000 * n
        try:
            with psycopg.connect(cfg.database_url.rsplit("?", 1)[0], autocommit=True) as conn:
                while not self.stop.is_set():
                    next_id += 1
                    conn.execute(
                        "INSERT INTO orders (id, customer, amount) VALUES (%s, %s, %s)",
                        (next_id, cfg.site, next_id % 997),
                    )
                    target = rnd.choice(shared)
                    conn.execute(
                        "UPDATE orders SET note = %s, amount = amount + 1 WHERE id = %s",
                        (f"{cfg.site} {next_id}", target),
                    )
                    if next_id % 5 == 0:
                        conn.execute("DELETE FROM orders WHERE id = %s", (next_id - 2,))
                    if next_id % 11 == 0:
                        conn.execute("DELETE FROM orders WHERE id = %s", (rnd.choice(shared),))
                    self.changes += 3
                    self.stop.wait(pace)
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)


def seed(cfg: config_mod.Config, ids: range) -> None:
    """Rows inserted at one site as an application would (captured, sent everywhere)."""
    sql(
        db_of(cfg),
        "INSERT INTO orders (id, customer, amount, note, updated_at, blob) "
        "SELECT i, 'seed', i * 1.5, 'n' || i, now(), decode(md5(i::text), 'hex') "
        "FROM generate_series(%s::bigint, %s::bigint) AS i",
        ids.start,
        ids.stop - 1,
    )
