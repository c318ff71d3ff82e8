"""TLS to the broker (amqps://) against the real local cluster: its test CA, server and
client certificates are made by scripts/cluster start (scripts/tls-ca) under
$BRIDGE_CLUSTER_DIR/tls, its TLS ports are 5690 (HAProxy, TLS passed through to the
nodes) and 5691-5693 (the nodes). A cluster without them fails these tests: run
`sudo scripts/cluster start`, which adds TLS to a running cluster (docs/cluster.md, TLS).

Elsewhere (a standalone node while developing) set BRIDGE_TEST_TLS_DIR (ca.crt,
client.crt, client.key), BRIDGE_TEST_AMQPS (host:port of the TLS address applications
use) and BRIDGE_TEST_AMQPS_NODE (host:port of one node's TLS listener)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pika
import pika.exceptions
import pytest

from bridge.broker import Endpoints
from bridge.config import Config
from bridge.errors import BrokerError, BrokerLoginError
from tests.conftest import (
    ROOT,
    VHOST,
    db_of,
    env_of,
    make_config,
    running,
    sql,
    wait_for,
)
from tests.integration.test_run_login import stopped_with_one_error

pytestmark = pytest.mark.integration

CLUSTER_DIR = Path(os.environ.get("BRIDGE_CLUSTER_DIR", "/var/tmp/bridge-cluster"))
TLS_DIR = Path(os.environ.get("BRIDGE_TEST_TLS_DIR", str(CLUSTER_DIR / "tls")))
AMQPS = os.environ.get("BRIDGE_TEST_AMQPS", "127.0.0.1:5690")  # through HAProxy
AMQPS_NODE = os.environ.get("BRIDGE_TEST_AMQPS_NODE", "127.0.0.1:5691")  # rabbit1 directly


def amqps_url(site: str, host_port: str = AMQPS) -> str:
    user = site.lower()
    return f"amqps://{user}:{user}-secret@{host_port}/{VHOST}"


def listening(host_port: str) -> bool:
    host, port = host_port.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture
def tls_broker(broker_users: None) -> Path:
    """The cluster's TLS directory, once its files and TLS ports are there."""
    missing = [f for f in ("ca.crt", "client.crt", "client.key") if not (TLS_DIR / f).is_file()]
    closed = [a for a in (AMQPS, AMQPS_NODE) if not listening(a)]
    if missing or closed:
        what = [f"no {', '.join(missing)} in {TLS_DIR}"] * bool(missing) + [
            f"nothing listening on {', '.join(closed)}"
        ] * bool(closed)
        pytest.fail(
            f"the local cluster has no TLS ({'; '.join(what)}). Run `sudo scripts/cluster "
            "start`: it creates the test CA and adds the TLS listeners to a running cluster, "
            "one node at a time"
        )
    return TLS_DIR


def tls_config(cfg: Config, **tls: str) -> Config:
    """`cfg` connecting with amqps:// (through HAProxy unless `host_port` says otherwise)
    and the given tls_* keys."""
    host_port = tls.pop("host_port", AMQPS)
    return make_config(cfg.site, db_of(cfg), amqp_url=amqps_url(cfg.site, host_port), **tls)


def peer(conn: pika.BlockingConnection) -> ssl.SSLSocket:
    """The socket under a pika connection (pika keeps it in its transport)."""
    sock = conn._impl._transport._sock  # noqa: SLF001 - no public way to the socket
    assert isinstance(sock, ssl.SSLSocket), f"not a TLS connection: {sock!r}"
    return sock


def subject(cert: dict[str, object], field: str) -> str:
    return next(v for rdn in cert[field] for k, v in rdn if k == "commonName")  # type: ignore[attr-defined]


def foreign_ca(tmp_path: Path) -> Path:
    """A CA of this test's own, with certificates it signed: none of the cluster's."""
    directory = tmp_path / "foreign-ca"
    subprocess.run(
        [str(ROOT / "scripts" / "tls-ca"), str(directory)], check=True, capture_output=True
    )
    return directory


def test_sites_sync_over_tls_through_haproxy(sites, tls_broker):
    paris, london = (
        tls_config(sites[n], tls_ca_file=str(tls_broker / "ca.crt")) for n in ("PARIS", "LONDON")
    )
    # the same connection settings every part of bridge uses: a TLS socket, whose peer is
    # a node's certificate (HAProxy passes TLS through, it does not terminate it)
    conn = Endpoints.of(paris).blocking()
    try:
        sock = peer(conn)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        cert = sock.getpeercert()
        assert (subject(cert, "subject"), subject(cert, "issuer")) == (
            "localhost",
            "bridge test CA",
        )
    finally:
        conn.close()
    # and the port speaks nothing else: a plain AMQP client gets no further than the socket
    plain = f"amqp://paris:paris-secret@{AMQPS}/{VHOST}"
    with pytest.raises((pika.exceptions.AMQPError, OSError)):
        pika.BlockingConnection(
            pika.URLParameters(plain + "?connection_attempts=1&socket_timeout=5")
        ).close()

    with running(paris, london):
        sql(db_of(paris), "INSERT INTO orders (id, customer, amount) VALUES (1, 'tls', 1.5)")
        wait_for(
            lambda: sql(db_of(london), "SELECT customer FROM orders WHERE id = 1") == [("tls",)],
            30,
            "PARIS's row at LONDON over amqps://",
        )


def test_a_client_certificate_signed_by_the_cluster_ca_is_accepted(sites, tls_broker):
    cfg = tls_config(
        sites["PARIS"],
        host_port=AMQPS_NODE,
        tls_ca_file=str(tls_broker / "ca.crt"),
        tls_cert_file=str(tls_broker / "client.crt"),
        tls_key_file=str(tls_broker / "client.key"),
    )
    conn = Endpoints.of(cfg).blocking()
    try:
        assert peer(conn).version() in ("TLSv1.2", "TLSv1.3")
        channel = conn.channel()
        channel.queue_declare("SITE_PARIS", passive=True)  # logged in and working
    finally:
        conn.close()


def test_a_client_certificate_of_another_ca_is_refused(sites, tls_broker, tmp_path):
    other = foreign_ca(tmp_path)
    cfg = tls_config(
        sites["PARIS"],
        host_port=AMQPS_NODE,
        tls_ca_file=str(tls_broker / "ca.crt"),
        tls_cert_file=str(other / "client.crt"),
        tls_key_file=str(other / "client.key"),
    )
    with pytest.raises(BrokerLoginError) as caught:
        Endpoints.of(cfg).blocking()
    text = str(caught.value)
    # the broker's alert (TLSV1_ALERT_UNKNOWN_CA), or with TLS 1.3 its close if the
    # client had already sent the AMQP header: the same advice either way
    assert "refused the client certificate" in text, text
    assert "check tls_cert_file and tls_key_file" in text
    assert "paris-secret" not in text


def test_a_ca_that_did_not_sign_the_broker_stops_bridge_run(sites, tls_broker, tmp_path):
    """`bridge run` (a real process) exits 1 with one line naming the certificate problem."""
    cfg = tls_config(sites["PARIS"], tls_ca_file=str(foreign_ca(tmp_path) / "ca.crt"))
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run"],
            env=env_of(cfg, tls_ca_file=cfg.tls_ca_file),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    text, error = stopped_with_one_error(proc, log, 60)
    assert error.startswith("Error: BrokerLoginError: cannot connect to RabbitMQ: amqps://")
    assert "TLS: the broker's certificate is not trusted (" in error
    assert "check tls_ca_file" in error
    assert "paris-secret" not in text


def test_a_server_name_the_certificate_does_not_carry_is_named(sites, tls_broker):
    cfg = tls_config(
        sites["LONDON"],
        tls_ca_file=str(tls_broker / "ca.crt"),
        tls_server_name="rabbit.example.org",
    )
    with pytest.raises(BrokerError) as caught:
        Endpoints.of(cfg).blocking()
    text = str(caught.value)
    assert "TLS: the broker's certificate does not match the server name (" in text, text
    assert "rabbit.example.org" in text and "set tls_server_name" in text
    assert "london-secret" not in text
