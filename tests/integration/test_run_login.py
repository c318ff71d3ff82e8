"""`bridge run` and a broker that refuses the login, against the real cluster.

Before any connection worked, a refused login (wrong password, no access to the vhost) is
a configuration error: the process exits 1 with one line saying so. A lost or refused
connection is retried: an address where nothing listens, and a refused login after the
link once worked (here: the user's password changed under a running bridge)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from bridge import topology
from tests.conftest import (
    AMQP_ADMIN,
    DB_PREFIX,
    ROOT,
    VHOST,
    amqp_url_for,
    create_site_db,
    db_of,
    env_of,
    make_config,
    outbox_empty,
    running,
    setup_site,
    sql,
    wait_for,
)
from tests.faults.harness import Proxy

pytestmark = pytest.mark.integration

WRONG = "wrong-password-x9"


@pytest.fixture
def paris(broker_users):
    """PARIS's database, initialised and capturing `orders`."""
    db = DB_PREFIX + "login_paris"
    create_site_db(db)
    cfg = make_config("PARIS", db)
    setup_site(cfg)
    return cfg


def start_run(cfg, log: Path, amqp_url: str) -> subprocess.Popen[bytes]:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bridge", "run"],
            env={**env_of(cfg), "BRIDGE_AMQP_URL": amqp_url},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )


@pytest.mark.parametrize(
    ("amqp_url", "reason"),
    [
        (
            f"amqp://paris:{WRONG}@127.0.0.1:5680/{VHOST}",
            "login refused (ACCESS_REFUSED - Login was refused",
        ),
        (
            "amqp://paris:paris-secret@127.0.0.1:5680/%2F",
            "login refused (NOT_ALLOWED - access to vhost '/' refused for user 'paris')",
        ),
        (
            f"amqp://paris:paris-secret@127.0.0.1:5680/{VHOST}-missing",
            f"login refused (NOT_ALLOWED - vhost {VHOST}-missing not found)",
        ),
    ],
    ids=["wrong-password", "vhost-refused", "vhost-missing"],
)
def test_a_refused_login_at_start_exits_1_with_one_line(paris, tmp_path, amqp_url, reason):
    log = tmp_path / "run.log"
    text, error = stopped_with_one_error(start_run(paris, log, amqp_url), log, 30)
    assert error.startswith("Error: BrokerLoginError: cannot connect to RabbitMQ: amqp://")
    assert reason in error
    assert "in amqp_url" in error  # what to check
    assert "retrying" not in text


def stopped_with_one_error(
    proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> tuple[str, str]:
    """`bridge run` exited 1 within `timeout` with one `Error:` line and no traceback:
    its whole output and that line."""
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert code == 1, text
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, text
    assert "Traceback" not in text
    return text, errors[0]
    assert WRONG not in text and "paris-secret" not in text


def test_an_unreachable_broker_is_retried_until_sigterm(paris, tmp_path):
    log = tmp_path / "run.log"
    proc = start_run(paris, log, f"amqp://paris:{WRONG}@127.0.0.1:9/{VHOST}")
    try:

        def retried(part: str) -> bool:
            return any(
                part in line and "connection refused" in line and "retrying" in line
                for line in log.read_text().splitlines()
            )

        wait_for(
            lambda: retried("dispatcher") and retried("consumer"),
            30,
            "the dispatcher and the consumer retrying",
        )
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert WRONG not in log.read_text()


SITE = "OPSAUTH"  # a broker user of this test's own: its password is changed under it


def set_password(password: str) -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "cluster"), "add-site-user", SITE, password],
        env={**os.environ, "RABBITMQ_DEFAULT_VHOST": VHOST},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_refused_login_after_the_link_worked_is_retried(broker_users, caplog):
    caplog.set_level(logging.INFO)
    password = f"{SITE.lower()}-secret"  # as amqp_url_for writes it
    set_password(password)
    admin = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
    topology.apply(admin.channel(), ["PARIS", SITE], "PARIS")
    db = DB_PREFIX + "login_opsauth"
    create_site_db(db)
    proxy = Proxy(("127.0.0.1", 5680))
    cfg = make_config(SITE, db, sites=["PARIS", SITE], amqp_url=proxy.url(amqp_url_for(SITE)))
    setup_site(cfg)
    try:
        with running(cfg) as bridges:
            bridge = bridges[SITE]
            sql(db, "INSERT INTO orders (id, customer) VALUES (1, 'a')")
            wait_for(lambda: outbox_empty(cfg), 30, "the first change published and echoed")

            set_password(WRONG)
            proxy.cut()  # every connection drops; the bridge logs in again ...
            proxy.heal()

            def refused(part: str) -> bool:
                return any(
                    part in r.getMessage()
                    and "login refused (ACCESS_REFUSED" in r.getMessage()
                    and "retrying" in r.getMessage()
                    for r in caplog.records
                )

            wait_for(
                lambda: refused("dispatcher") and refused("consumer"),
                60,
                "the dispatcher and the consumer retrying a refused login",
            )
            sql(db, "INSERT INTO orders (id, customer) VALUES (2, 'b')")
            assert not outbox_empty(cfg)  # held while the login is refused
            assert not bridge.failed and bridge.fatal is None
            assert all(t.is_alive() for t in bridge.threads)

            set_password(password)  # ... and gets back in once the password is right
            wait_for(lambda: outbox_empty(cfg), 60, "the second change published and echoed")
            assert not bridge.failed
        assert sql(db_of(cfg), "SELECT count(*) FROM orders")[0][0] == 2
        assert not any(
            WRONG in r.getMessage() or password in r.getMessage() for r in caplog.records
        )
    finally:
        set_password(password)
        proxy.close()
        ch = admin.channel()
        for queue in (f"SITE_{SITE}", f"SITE_{SITE}.dlq"):
            ch.queue_delete(queue)
        admin.close()
