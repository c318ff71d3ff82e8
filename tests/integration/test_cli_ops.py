"""`bridge topology apply` and `bridge verify` through the CLI, against the real servers."""

from __future__ import annotations

import pika
import pytest
from click.testing import CliRunner

from bridge.cli import main
from tests.conftest import AMQP_ADMIN, ARCHIVE, SITES, VHOST, db_of, running, sql, wait_for
from tests.integration.test_cli_run import env_of

pytestmark = pytest.mark.integration


def invoke(env, *args):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_topology_apply_is_idempotent(sites, fresh_topology):
    env = env_of(sites["PARIS"])
    for _ in range(2):
        out = invoke(env, "topology", "apply", "--amqp-url", AMQP_ADMIN)
        assert out.exit_code == 0, out.output
    for site in SITES:
        ok = fresh_topology.queue_declare(f"SITE_{site}", passive=True)
        assert ok.method.message_count == 0
    fresh_topology.queue_declare(f"SITE_{ARCHIVE}_HISTO.dlq", passive=True)


def test_topology_apply_explains_a_clash_and_a_missing_right(sites, fresh_topology):
    env = env_of(sites["PARIS"])
    # a site's own least-privilege user may not declare anything
    out = invoke(env, "topology", "apply")
    assert out.exit_code == 1
    assert "administrator" in out.output
    # an existing queue with other arguments
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
    ch = conn.channel()
    ch.queue_delete(f"SITE_{SITES[1]}")
    ch.queue_declare(f"SITE_{SITES[1]}", durable=True)  # a classic queue
    conn.close()
    out = invoke(env, "topology", "apply", "--amqp-url", AMQP_ADMIN)
    assert out.exit_code == 1
    assert "exists with other settings" in out.output


def test_verify_passes_then_names_the_differing_table(sites):
    cfgs = list(sites.values())
    env = env_of(sites["PARIS"])
    peers = [f"--peer={c.site}={c.database_url}" for c in cfgs[1:]]
    with running(*cfgs):
        sql(db_of(sites["LONDON"]), "INSERT INTO orders (id, customer) VALUES (1, 'x'), (2, 'y')")
        wait_for(
            lambda: all(sql(db_of(c), "SELECT count(*) FROM orders")[0][0] == 2 for c in cfgs),
            30,
            "rows everywhere",
        )
    out = invoke(env, "verify", *peers)
    assert out.exit_code == 0, out.output
    assert "OK: 3 sites hold the same rows" in out.output
    # a change made behind bridge's back (capture off for this transaction)
    madrid = sites["MADRID"].database_url
    import psycopg

    with psycopg.connect(madrid) as conn:
        conn.execute("SET LOCAL bridge.applying = 'on'")
        conn.execute("UPDATE orders SET customer = 'tampered' WHERE id = 2")
    out = invoke(env, "verify", *peers)
    assert out.exit_code == 1
    assert "sites differ on table(s): orders" in out.output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("amqp://paris:x@127.0.0.1:9/", "connection refused"),
        (f"amqp://paris:wrong-password@127.0.0.1:5680/{VHOST}", "login refused"),
    ],
)
def test_broker_errors_say_what_to_check_without_the_password(sites, url, message):
    env = {**env_of(sites["PARIS"]), "BRIDGE_AMQP_URL": url}
    out = invoke(env, "topology", "apply")
    assert out.exit_code == 1
    assert message in out.output
    assert "wrong-password" not in out.output


def test_a_database_error_is_one_line_without_the_password(sites):
    env = {**env_of(sites["PARIS"]), "BRIDGE_DATABASE_URL": "postgresql://u:db-pw-x7@127.0.0.1:9/x"}
    out = CliRunner().invoke(main, ["status"], env=env, catch_exceptions=False)
    assert out.exit_code == 1
    lines = out.output.splitlines()
    assert len(lines) == 1, out.output
    # libpq's second line ("Is the server running ...") stays on the error's line
    assert lines[0].startswith("Error: DatabaseError: cannot connect to PostgreSQL at ")
    assert "Connection refused Is the server running on that host" in lines[0]
    assert "db-pw-x7" not in out.output
