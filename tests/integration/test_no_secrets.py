"""No password in any output: every command a site runs, as a real process at DEBUG, in
both log formats, with one unique secret as the password of its database URL (PostgreSQL
here trusts loopback: the password is accepted and ignored) and of its broker user - on
success and on the error paths (wrong broker password, unreachable broker, unreachable
database, missing table). In the JSON format every line of stderr is one JSON object, and
every record about an event names its site and table (docs/operations.md, "Logs")."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest

from bridge import topology
from bridge.logfmt import FORMATS
from tests.conftest import (
    AMQP_ADMIN,
    DB_PREFIX,
    PG,
    ROOT,
    VHOST,
    create_site_db,
    sql,
    wait_for,
)

pytestmark = pytest.mark.integration

SECRET = f"Nsx{uuid.uuid4().hex[:16]}Q"
# Sites of this test only: RabbitMQ users are global, so a site user of the shared tests
# (paris, ...) must keep its password. Named after the database prefix, which tells two
# checkouts testing side by side apart.
_TAG = re.sub(r"[^A-Z0-9_]", "_", DB_PREFIX.upper())[:20]
A, B = f"NS{_TAG}A", f"NS{_TAG}B"
# B refuses a row A accepts: the event goes to B's conflicts, logged with its context
B_DDL = """
CREATE TABLE orders (
    id         bigint PRIMARY KEY,
    customer   text NOT NULL CHECK (customer <> 'refused'),
    amount     numeric(14, 4),
    note       text,
    updated_at timestamptz,
    blob       bytea
)
"""
A_DDL = B_DDL.replace(" CHECK (customer <> 'refused')", "")
# A line about an event that cannot name its table (tests/unit/test_logfmt.py, NO_TABLE)
ACK_LINE = re.compile(r"^site=\S+ event=\S+ (failed|conflict) at ")


def _pg_url(db: str, password: str = SECRET, port: int | None = None) -> str:
    parts = urllib.parse.urlsplit(PG)
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{port or parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, path=f"/{db}"))


def _amqp_url(user: str, password: str = SECRET, port: int = 5680) -> str:
    return f"amqp://{user}:{password}@127.0.0.1:{port}/{urllib.parse.quote(VHOST, safe='')}"


@dataclass
class Ran:
    args: list[str]
    rc: int
    out: str
    err: str


@pytest.fixture
def secret_sites(broker_users: None) -> dict[str, dict[str, str]]:
    """Two site databases and broker users whose password is SECRET, their queues
    declared empty; the environment of each site's bridge."""
    env = {**os.environ, "RABBITMQ_DEFAULT_VHOST": VHOST}
    for site in (A, B):
        args = ["add-site-user", site, SECRET, *(["--archive"] * (site == A))]
        done = subprocess.run(
            [str(ROOT / "scripts" / "cluster"), *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert SECRET not in done.stdout + done.stderr
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
    try:
        ch = conn.channel()
        for q in topology.queue_names((A, B), A) + topology.acks_queue_names((A, B)):
            ch.queue_delete(q)
            ch.queue_delete(f"{q}.dlq")
        topology.apply(ch, (A, B), A)
    finally:
        conn.close()
    dbs = {A: f"{DB_PREFIX}nosecret_a", B: f"{DB_PREFIX}nosecret_b"}
    create_site_db(dbs[A], A_DDL)
    create_site_db(dbs[B], B_DDL)
    base = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    return {
        site: {
            **base,
            "BRIDGE_SITE": site,
            "BRIDGE_SITES": f"{A},{B}",
            "BRIDGE_ARCHIVE_SITE": A,
            "BRIDGE_DATABASE_URL": _pg_url(dbs[site]),
            "BRIDGE_AMQP_URL": _amqp_url(site.lower()),
            "BRIDGE_TABLES": "orders:lww",
            "BRIDGE_POLL_INTERVAL": "1",
            "BRIDGE_PEERS": f"{B}={_pg_url(dbs[B])}" if site == A else f"{A}={_pg_url(dbs[A])}",
        }
        for site in (A, B)
    }


def _db(env: dict[str, str]) -> str:
    return env["BRIDGE_DATABASE_URL"].rsplit("/", 1)[1]


def _bridge(log_format: str) -> list[str]:
    return [sys.executable, "-m", "bridge", "--log-level", "DEBUG", "--log-format", log_format]


def _run(log_format: str, env: dict[str, str], cwd: Path, *args: str, **over: str) -> Ran:
    done = subprocess.run(
        [*_bridge(log_format), *args],
        env={**env, **over},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Ran(list(args), done.returncode, done.stdout, done.stderr)


def _records(ran: Ran) -> list[dict[str, Any]]:
    """Every line of stderr as a JSON object (fails on one that is not)."""
    out = []
    for line in ran.err.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pytest.fail(f"bridge {' '.join(ran.args)}: stderr line is not JSON: {line!r}")
    return out


@pytest.mark.parametrize("log_format", FORMATS)
def test_no_password_in_any_output(secret_sites, tmp_path, log_format):
    envs = secret_sites
    ea, eb = envs[A], envs[B]
    results: list[Ran] = []

    def bridge(env: dict[str, str], *args: str, expect: int | None = 0, **over: str) -> Ran:
        ran = _run(log_format, env, tmp_path, *args, **over)
        results.append(ran)
        if expect is not None:
            assert ran.rc == expect, (ran.args, ran.rc, ran.out[-2000:], ran.err[-3000:])
        return ran

    # setup, as an operator runs it
    bridge(ea, "init", "--sql")
    for env in (ea, eb):
        bridge(env, "init")
        bridge(env, "install-triggers", "--table", "orders")
    review = bridge(ea, "install-triggers", "--table", "orders", "--sql")
    assert "CREATE" in review.out  # the script was printed
    # a site user may not declare (configure '^$'); an admin with a wrong password
    bridge(ea, "topology", "apply", expect=1)
    bridge(ea, "topology", "apply", "--amqp-url", _amqp_url("admin"), expect=1)

    # bridge run with traffic, stopped by SIGTERM
    logs = {s: tmp_path / f"run-{s}.log" for s in (A, B)}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for site, env in envs.items():
            with open(logs[site], "wb") as f:
                procs[site] = subprocess.Popen(
                    [*_bridge(log_format), "run"], env=env, cwd=tmp_path, stderr=f, stdout=f
                )

        def ready(site: str) -> bool:
            text = logs[site].read_text()
            return "dispatcher ready" in text and f"consuming SITE_{site}" in text

        wait_for(lambda: ready(A) and ready(B), 60, "both bridges ready")
        sql(_db(ea), "INSERT INTO orders (id, customer) VALUES (1, 'a'), (2, 'refused')")
        sql(_db(eb), "INSERT INTO orders (id, customer) VALUES (3, 'b')")
        sql(_db(ea), "UPDATE orders SET note = 'x' WHERE id = 1")

        def synced() -> bool:
            a = sql(_db(ea), "SELECT id FROM orders ORDER BY 1")
            b = sql(_db(eb), "SELECT id FROM orders ORDER BY 1")
            refused = sql(_db(eb), "SELECT count(*) FROM bridge_conflicts")[0][0]
            return a == [(1,), (2,), (3,)] and b == [(1,), (3,)] and refused >= 1

        wait_for(synced, 60, "rows exchanged, the refused one a conflict at B")
        # A hears of it through B's ack (acks = direct): wait for that line too
        wait_for(lambda: " at " + B in logs[A].read_text(), 60, "A told of the conflict")
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for site, p in procs.items():
            assert p.wait(timeout=60) == 0, logs[site].read_text()[-3000:]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    for site in (A, B):
        results.append(Ran(["run", site], 0, "", logs[site].read_text()))

    # operating
    bridge(ea, "status")
    bridge(ea, "status", "--json")
    bridge(ea, "verify", expect=1)  # B refused a row: the sites differ, and say so
    bridge(ea, "cleanup", "--dry-run")
    bridge(ea, "dlq", "list")
    bridge(ea, "dlq", "--archive", "list")

    # error paths, the secret in every URL
    wrong = bridge(ea, "dlq", "list", expect=1, BRIDGE_AMQP_URL=_amqp_url(A.lower(), "x" + SECRET))
    assert ":***@" in wrong.err  # the URL was shown, masked
    bridge(ea, "dlq", "list", expect=1, BRIDGE_AMQP_URL=_amqp_url("admin"))
    bridge(ea, "dlq", "list", expect=1, BRIDGE_AMQP_URL=_amqp_url(A.lower(), port=1))
    for args in (["status"], ["status", "--json"]):  # unhealthy: the broker refuses the login
        bridge(ea, *args, expect=1, BRIDGE_AMQP_URL=_amqp_url(A.lower(), "x" + SECRET))
    down = _pg_url(_db(ea), port=1)
    for args in (["status"], ["status", "--json"], ["init"], ["cleanup", "--dry-run"], ["verify"]):
        gone = bridge(ea, *args, expect=1, BRIDGE_DATABASE_URL=down)
        assert ":***@" in gone.err, gone.err
    bridge(ea, "verify", expect=1, BRIDGE_PEERS=f"{B}={_pg_url(_db(eb), port=1)}")
    bridge(ea, "install-triggers", "--table", "no_such_table", expect=1)
    bridge(ea, "install-triggers", "--table", "no_such_table", "--sql", expect=1)

    leaks = [r.args for r in results if SECRET in r.out or SECRET in r.err]
    assert leaks == []
    if log_format == "json":
        event_records = []
        for ran in results:
            for rec in _records(ran):
                assert {"ts", "level", "logger", "thread", "message"} <= set(rec), rec
                if "event_id" in rec and not ACK_LINE.match(rec["message"]):
                    assert rec.get("site") in (A, B) and rec.get("table"), rec
                    event_records.append(rec)
        # the refused row's conflict at B, at least, was seen with its context
        assert any(
            r["site"] == B
            and r["table"] == "orders"
            and r.get("origin") == A
            and "conflict" in r["message"]
            for r in event_records
        ), event_records
