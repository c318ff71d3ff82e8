"""TLS to the broker without a broker: configuration rules, the client context's
settings, and the messages of real handshake failures (an in-process TLS server on a
socket pair, certificates from scripts/tls-ca)."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pika.exceptions
import pytest
from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorTransportSetupError,
)

from bridge import config
from bridge.broker import Endpoints, describe, parameters, refused_at_start
from bridge.dialects.dbapi import driver_options
from bridge.errors import ConfigError
from bridge.tls import TlsSettings, client_context, handshake_failure, uses_tls

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
BASE = {
    "site": "paris",
    "database_url": "postgresql://127.0.0.1/paris",
    "amqp_url": "amqps://paris:pw-secret@127.0.0.1:5690/",
    "sites": ["PARIS", "LONDON"],
    "tables": {"orders": "lww"},
}


def make_ca(directory: Path) -> Path:
    """A test CA with server and client certificates, made by the project's script."""
    subprocess.run(
        [str(ROOT / "scripts" / "tls-ca"), str(directory)], check=True, capture_output=True
    )
    return directory


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ca(tmp_path_factory.mktemp("other-ca"))


def test_amqps_with_the_tls_keys_is_a_valid_configuration(ca):
    cfg = config.from_mapping(
        {
            **BASE,
            "tls_ca_file": str(ca / "ca.crt"),
            "tls_cert_file": str(ca / "client.crt"),
            "tls_key_file": str(ca / "client.key"),
        }
    )
    assert cfg.tls == TlsSettings(
        str(ca / "ca.crt"), str(ca / "client.crt"), str(ca / "client.key")
    )
    assert uses_tls(cfg.amqp_urls, cfg.tls)
    assert config.from_mapping({**BASE, "amqp_url": "amqp://paris:x@h:5680/"}).tls == TlsSettings()


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (
            {"amqp_url": "amqps://p:x@h1:5691/,amqp://p:x@h2:5682/"},
            "mixes amqp:// and amqps://.*write amqps:// for every address",
        ),
        (
            {"amqp_url": "amqp://p:x@h:5680/", "tls_ca_file": "/etc/ca.pem"},
            r"tls_ca_file set but 'amqp_url' is amqp:// \(no TLS\): write amqps://",
        ),
        ({"tls_cert_file": "/c.pem"}, "needs both tls_cert_file and tls_key_file"),
        ({"tls_key_file": "/k.pem"}, "needs both tls_cert_file and tls_key_file"),
        ({"amqp_url": "http://p:x@h:5680/"}, r"scheme http:// is not a broker address"),
        ({"tls_ca_file": 3}, "'tls_ca_file' must be a string"),
    ],
)
def test_wrong_tls_settings_say_what_to_write(over, message):
    with pytest.raises(ConfigError, match=message):
        config.from_mapping({**BASE, **over})


def test_tls_keys_come_from_the_environment_too(ca):
    env = {
        "BRIDGE_SITE": "PARIS",
        "BRIDGE_DATABASE_URL": "postgresql://127.0.0.1/paris",
        "BRIDGE_AMQP_URL": "amqps://paris:x@localhost:5690/",
        "BRIDGE_SITES": "PARIS,LONDON",
        "BRIDGE_TABLES": "orders",
        "BRIDGE_TLS_CA_FILE": str(ca / "ca.crt"),
        "BRIDGE_TLS_SERVER_NAME": "localhost",
    }
    cfg = config.load(env=env, dotenv=None)
    assert (cfg.tls_ca_file, cfg.tls_server_name) == (str(ca / "ca.crt"), "localhost")


def test_the_client_context_requires_a_checked_certificate_and_tls_1_2(ca):
    context = client_context(TlsSettings(str(ca / "ca.crt")))
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("organizationName", "bridge test"),), (("commonName", "bridge test CA"),))
    ]


def test_unreadable_tls_files_are_configuration_errors(ca, tmp_path):
    with pytest.raises(ConfigError, match="tls_ca_file '/nonexistent/ca.crt' cannot be read"):
        client_context(TlsSettings("/nonexistent/ca.crt"))
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    with pytest.raises(ConfigError, match="tls_ca_file .* cannot be read"):
        client_context(TlsSettings(str(tmp_path / "not-a-cert.pem")))
    with pytest.raises(ConfigError, match="tls_cert_file .* cannot be loaded"):
        client_context(TlsSettings(str(ca / "ca.crt"), str(ca / "client.crt"), str(ca / "ca.key")))


def test_every_connection_of_endpoints_uses_the_one_context(ca):
    settings = TlsSettings(str(ca / "ca.crt"), server_name="broker.internal")
    endpoints = Endpoints(
        ["amqps://paris:x@10.0.0.1:5691/", "amqps://paris:x@10.0.0.2:5692/"], 30, settings
    )
    assert endpoints.tls is not None
    first, second = (endpoints.parameters(u) for u in endpoints.urls)
    assert first.ssl_options is not None and second.ssl_options is not None
    assert first.ssl_options.context is second.ssl_options.context is endpoints.tls
    assert first.ssl_options.server_hostname == "broker.internal"
    assert (first.port, second.port) == (5691, 5692)
    # no tls_server_name: the URL's host is the name the certificate must carry
    plain_name = Endpoints(["amqps://paris:x@localhost:5690/"], 30, TlsSettings(str(ca / "ca.crt")))
    assert plain_name.parameters(plain_name.urls[0]).ssl_options.server_hostname == "localhost"


def test_a_plain_url_has_no_tls_even_from_pika():
    assert Endpoints(["amqp://paris:x@127.0.0.1:5680/"]).tls is None
    assert parameters("amqp://paris:x@127.0.0.1:5680/").ssl_options is None
    # amqps:// alone would get pika's own context (no hostname given): bridge gives its own
    assert parameters("amqps://paris:x@h:5690/").ssl_options is None


def handshake(
    server_dir: Path, client: TlsSettings, hostname: str = "localhost", require_client=False
) -> BaseException | None:
    """A TLS handshake between client_context(client) and a server presenting
    server_dir's server certificate, trusting server_dir's CA for client certificates;
    the client's error, or None if it succeeded."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server_dir / "server.crt", server_dir / "server.key")
    server_ctx.load_verify_locations(server_dir / "ca.crt")
    server_ctx.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_OPTIONAL
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(b, server_side=True) as s:
                s.sendall(b"y")
        except (OSError, ssl.SSLError):
            b.close()

    thread = threading.Thread(target=serve)
    thread.start()
    error: BaseException | None = None
    try:
        with client_context(client).wrap_socket(a, server_hostname=hostname) as s:
            # TLS 1.3: the server's verdict on our certificate comes after the handshake
            # (sending first would make the server's close a reset that loses its alert)
            assert s.recv(1) == b"y"
    except (OSError, ssl.SSLError) as exc:
        error = exc
    finally:
        a.close()
        thread.join(10)
    return error


def test_handshake_failures_name_what_to_check(ca, other_ca):
    assert handshake(ca, TlsSettings(str(ca / "ca.crt"))) is None
    untrusted = handshake(ca, TlsSettings(str(other_ca / "ca.crt")))
    assert untrusted is not None
    # OpenSSL's words for it depend on the chain the server sends (here: with its CA)
    assert re.fullmatch(
        r"TLS: the broker's certificate is not trusted \((self-signed certificate in "
        r"certificate chain|unable to get local issuer certificate)\): check tls_ca_file "
        r"\(the CA that signed the broker's certificate; default: the system's trust store\)",
        handshake_failure(untrusted) or "",
    )
    mismatch = handshake(ca, TlsSettings(str(ca / "ca.crt")), hostname="rabbit.example")
    assert mismatch is not None
    assert "does not match the server name" in (handshake_failure(mismatch) or "")
    assert "set tls_server_name" in (handshake_failure(mismatch) or "")
    assert refused_at_start(untrusted) and refused_at_start(mismatch)
    # as the dispatcher's SelectConnection reports it
    workflow = AMQPConnectionWorkflowFailed([AMQPConnectorTransportSetupError(untrusted)])
    assert describe(workflow) == handshake_failure(untrusted)
    assert refused_at_start(workflow)


def test_a_refused_client_certificate_is_named(ca, other_ca):
    foreign = TlsSettings(
        str(ca / "ca.crt"), str(other_ca / "client.crt"), str(other_ca / "client.key")
    )
    assert (
        handshake(
            ca,
            TlsSettings(str(ca / "ca.crt"), str(ca / "client.crt"), str(ca / "client.key")),
            require_client=True,
        )
        is None
    )
    refused = handshake(ca, foreign, require_client=True)
    assert refused is not None
    assert "refused the client certificate" in (handshake_failure(refused) or "")
    # as pika reports it: the text of the ssl error inside another error
    wrapped = pika.exceptions.IncompatibleProtocolError(
        f'StreamLostError: ("Stream connection lost: {refused!r}",)'
    )
    assert describe(wrapped).startswith("TLS: the broker refused the client certificate (")
    assert "check tls_cert_file and tls_key_file" in describe(wrapped)
    assert refused_at_start(wrapped)


def test_a_close_right_after_the_handshake_points_at_the_client_certificate():
    # what pika raises when the broker's alert was lost (seen against RabbitMQ 3.10)
    closed = pika.exceptions.IncompatibleProtocolError(
        "StreamLostError: (\"Stream connection lost: SSLEOFError(8, 'EOF occurred in "
        "violation of protocol (_ssl.c:2393)')\",)"
    )
    assert "refused the client certificate" in describe(closed)
    assert "check tls_cert_file and tls_key_file" in describe(closed)
    assert refused_at_start(closed)
    # an EOF during the handshake (a node going away behind HAProxy) is retried
    during = ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:992)")
    assert not refused_at_start(during)


def test_other_errors_are_not_tls_ones():
    assert handshake_failure(ConnectionRefusedError(111, "Connection refused")) is None
    assert not refused_at_start(pika.exceptions.StreamLostError("EOF"))


# -- database TLS: database_url parameters reach the driver (docs/configuration.md) ------


def test_mariadb_tls_parameters_become_pymysql_arguments():
    from bridge.dialects.mariadb import TLS_OPTIONS

    query = {
        "ssl_ca": "/etc/ca.pem",
        "ssl_verify_cert": "true",
        "ssl_verify_identity": "no",
        "charset": "utf8mb4",  # not TLS: left alone, as before
    }
    assert driver_options(query, TLS_OPTIONS, "PyMySQL") == {
        "ssl_ca": "/etc/ca.pem",
        "ssl_verify_cert": True,
        "ssl_verify_identity": False,
    }
    with pytest.raises(ConfigError, match="ssl_mode is not a PyMySQL TLS parameter; use ssl_ca"):
        driver_options({"ssl_mode": "REQUIRED"}, TLS_OPTIONS, "PyMySQL")
    with pytest.raises(ConfigError, match="ssl_verify_cert must be true or false"):
        driver_options({"ssl_verify_cert": "maybe"}, TLS_OPTIONS, "PyMySQL")


def test_oracle_tls_parameters_become_oracledb_arguments():
    from bridge.dialects.oracle import TLS_OPTIONS

    query = {
        "service_name": "FREEPDB1",
        "protocol": "tcps",
        "wallet_location": "/opt/wallet",
        "ssl_server_dn_match": "true",
    }
    assert driver_options(query, TLS_OPTIONS, "python-oracledb") == {
        "protocol": "tcps",
        "wallet_location": "/opt/wallet",
        "ssl_server_dn_match": True,
    }
    with pytest.raises(ConfigError, match="wallet_pwd is not a python-oracledb TLS parameter"):
        driver_options({"wallet_pwd": "x"}, TLS_OPTIONS, "python-oracledb")


def test_sql_server_encryption_keywords_go_into_the_odbc_string():
    from bridge.dialects.mssql import connection_string

    conninfo, _ = connection_string(
        "mssql+pyodbc://bridge:pw@db:1433/madrid?driver=ODBC+Driver+18+for+SQL+Server"
        "&Encrypt=yes&TrustServerCertificate=no"
    )
    assert ";Encrypt=yes;TrustServerCertificate=no" in conninfo
