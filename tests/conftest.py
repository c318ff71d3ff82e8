"""Shared fixtures: real PostgreSQL databases and the real local RabbitMQ cluster.

Services are started by `scripts/test` (the README's test command) before pytest runs;
here we only connect, and fail with a clear message if they are not there.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pika
import psycopg
import pytest

from bridge import config as config_mod
from bridge import install, topology
from bridge.dialects import for_url
from bridge.run import Bridge
from bridge.stats import Stats
from tests import dbs

# Under CI a skipped test fails with its reason unless marked allowed_skip (tests/skips.py).
pytest_plugins = ("tests.skips",)

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
# The tests' own vhost on the local cluster: a demo or a benchmark on the same cluster
# neither sees their events nor has its queues deleted by them.
VHOST = os.environ.get("BRIDGE_TEST_VHOST", "bridge-test")
# Test databases are named DB_PREFIX + test: two checkouts testing side by side on one
# server (each with its own BRIDGE_TEST_VHOST too) do not drop each other's databases.
DB_PREFIX = os.environ.get("BRIDGE_TEST_DB_PREFIX", "bt_")
AMQP_ADMIN = os.environ.get("BRIDGE_TEST_AMQP", f"amqp://admin:123456@127.0.0.1:5680/{VHOST}")
NAMES = ("PARIS", "LONDON", "MADRID")
SITES = NAMES
ARCHIVE = SITES[0]

ORDERS_DDL = """
CREATE TABLE orders (
    id         bigint PRIMARY KEY,
    customer   text NOT NULL,
    amount     numeric(14, 4),
    note       text,
    updated_at timestamptz,
    blob       bytea
)
"""


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = 0.1,
) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def amqp_url_for(site: str, host_port: str = "127.0.0.1:5680") -> str:
    user = site.lower()
    return f"amqp://{user}:{user}-secret@{host_port}/{VHOST}"


def pg_url(db: str) -> str:
    return f"{PG}/{db}"


def sql(db: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url(db), autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def truncate(db: str, tables: str) -> None:
    """TRUNCATE `tables` (SQL, e.g. "orders, bridge_outbox RESTART IDENTITY") even where
    bridge captures them: a capture trigger refuses a TRUNCATE unless the transaction is
    marked as bridge's own, as here (docs/operations.md, "TRUNCATE")."""
    with psycopg.connect(pg_url(db), autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL bridge.applying = 'on'")
        conn.execute(f"TRUNCATE {tables}")


@pytest.fixture(scope="session")
def broker_users() -> None:
    """The tests' vhost and least-privilege broker users for the test sites (idempotent)."""
    env = {**os.environ, "RABBITMQ_DEFAULT_VHOST": VHOST}
    commands = [["start"]] + [
        ["add-site-user", site, f"{site.lower()}-secret", *(["--archive"] * (site == ARCHIVE))]
        for site in SITES
    ]
    for args in commands:
        done = subprocess.run(
            [str(ROOT / "scripts" / "cluster"), *args], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.exit(
                f"scripts/cluster {' '.join(args[:2])} failed (is the local cluster "
                f"running? scripts/test starts it):\n{done.stdout}{done.stderr}",
                returncode=3,
            )


@pytest.fixture
def fresh_topology(
    broker_users: None,
) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """Delete and declare the bridge queues: every test starts with empty queues."""
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
    ch = conn.channel()
    for q in topology.queue_names(SITES, ARCHIVE):
        ch.queue_delete(q)
        ch.queue_delete(f"{q}.dlq")
    for q in topology.acks_queue_names(SITES):
        ch.queue_delete(q)
    topology.apply(ch, SITES, ARCHIVE)
    yield ch
    with contextlib.suppress(pika.exceptions.AMQPError):  # a fault test may have killed it
        conn.close()


def make_config(site: str, db: str, **over: Any) -> config_mod.Config:
    raw: dict[str, Any] = {
        "site": site,
        "database_url": pg_url(db),
        "amqp_url": amqp_url_for(site),
        "sites": list(SITES),
        "archive_site": ARCHIVE,
        "tables": {"orders": "lww"},
        "poll_interval": 1.0,
        "republish_after": 30.0,
    }
    raw.update(over)
    return config_mod.from_mapping(raw)


def env_of(cfg: config_mod.Config, **extra: Any) -> dict[str, str]:
    """The environment that makes `bridge run` (a real process) use this configuration;
    `extra` adds keys, e.g. heartbeat=5 -> BRIDGE_HEARTBEAT=5."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    values: dict[str, Any] = {
        "site": cfg.site,
        "database_url": cfg.database_url,
        "amqp_url": cfg.amqp_url,
        "sites": ",".join(cfg.sites),
        "archive_site": cfg.archive_site,
        "tables": ",".join(f"{t.name}:{t.policy}" for t in cfg.tables),
        "poll_interval": cfg.poll_interval,
        "republish_after": cfg.republish_after,
        "heartbeat": cfg.heartbeat,
        **extra,
    }
    env.update({f"BRIDGE_{k.upper()}": str(v) for k, v in values.items()})
    return env


# whether this session created a test database: only such a session drops them at its end
# (a run of unit tests alone must not drop the databases another run is using)
CREATED: list[str] = []


def create_site_db(db: str, ddl: str = ORDERS_DDL) -> None:
    CREATED.append(db)
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{db}"')
        conn.execute(f'CREATE DATABASE "{db}"')
    sql(db, ddl)


def setup_site(cfg: config_mod.Config) -> None:
    dialect = for_url(cfg.database_url)
    with dialect.connect(cfg.database_url) as conn:
        install.init(dialect, conn, cfg.site, install.ConnectionSink(conn), True)
        install.install_triggers(
            dialect, conn, [t.name for t in cfg.tables], install.ConnectionSink(conn), True
        )


SiteMaker = Callable[..., dict[str, config_mod.Config]]


@pytest.fixture
def make_sites(fresh_topology: Any, request: pytest.FixtureRequest) -> SiteMaker:
    """`make_sites(ddl, **config)`: three site databases created with `ddl`, bridge
    initialised and capturing the configured `tables`, keyed PARIS, LONDON, MADRID (the
    configs carry the real site names); `config` overrides make_config's keys."""

    def make(ddl: str = ORDERS_DDL, **over: Any) -> dict[str, config_mod.Config]:
        prefix = DB_PREFIX + request.node.name.replace("[", "_").replace("]", "")[:30].lower()
        configs = {}
        for name, site in zip(NAMES, SITES, strict=True):
            db = f"{prefix}_{name.lower()}"
            create_site_db(db, ddl)
            cfg = make_config(site, db, **over)
            setup_site(cfg)
            configs[name] = cfg
        return configs

    return make


@pytest.fixture
def sites(make_sites: SiteMaker) -> dict[str, config_mod.Config]:
    """Three site databases with an `orders` table, bridge initialised and capturing,
    keyed PARIS, LONDON, MADRID (the configs carry the real site names)."""
    return make_sites()


@contextmanager
def running(*configs: config_mod.Config) -> Iterator[dict[str, Bridge]]:
    """Run bridges in this process (threads) and stop them at the end."""
    bridges = {c.site: Bridge(c, Stats()) for c in configs}
    try:
        for b in bridges.values():
            b.start()
        yield bridges
    finally:
        for b in bridges.values():
            b.stop()
        # a part still running would go on taking the next test's messages (same queue
        # names): say so here, where it happened
        left = [t.name for b in bridges.values() for t in b.threads if t.is_alive()]
        assert not left, f"bridge threads still running 30 s after stop: {left}"


def db_of(cfg: config_mod.Config) -> str:
    return cfg.database_url.rsplit("/", 1)[1]


def rows(cfg: config_mod.Config, table: str = "orders") -> list[tuple[Any, ...]]:
    return sql(db_of(cfg), f"SELECT * FROM {table} ORDER BY 1")


def converged(configs: list[config_mod.Config], table: str = "orders") -> bool:
    first = rows(configs[0], table)
    return all(rows(c, table) == first for c in configs[1:])


def outbox_empty(cfg: config_mod.Config) -> bool:
    return sql(db_of(cfg), "SELECT count(*) FROM bridge_outbox")[0][0] == 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After a run that passed, drop the test databases (DB_PREFIX...): a few hundred idle
    databases cost the server all the time (autovacuum visits each one every naptime) and
    made the benchmarks run beside them noisier. After a failure they stay, to be looked
    at; the next run recreates each one it uses and drops them all if it passes."""
    if exitstatus != 0 or os.environ.get("BRIDGE_TEST_KEEP_DBS") or not (CREATED or dbs.CREATED):
        return
    with contextlib.suppress(psycopg.OperationalError):
        drop_test_databases()
    with contextlib.suppress(Exception):  # MariaDB's (tests/dbs.py)
        dbs.drop_all(DB_PREFIX)


def drop_test_databases() -> list[str]:
    """Drop every database named DB_PREFIX...; their names."""
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        names = [
            name
            for (name,) in conn.execute(
                "SELECT datname FROM pg_database WHERE left(datname, length(%s)) = %s",
                (DB_PREFIX, DB_PREFIX),
            )
        ]
        for name in names:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    return names
