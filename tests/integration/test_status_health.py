"""`bridge status` exit status and `--json` (bridge/health.py, bridge/status_report.py)
against real PostgreSQL and the real cluster, probed with the sites' least-privilege
broker users: healthy, then each reason for unhealthy."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pika
import pytest
from click.testing import CliRunner, Result

from bridge.broker import DEAD_LETTER_EXCHANGE
from bridge.cli import main
from bridge.config import Config
from tests.conftest import (
    AMQP_ADMIN,
    VHOST,
    amqp_url_for,
    db_of,
    env_of,
    running,
    sql,
    wait_for,
)
from tests.integration.test_sync import publish_raw
from tests.unit.test_health import documented_example, key_paths

pytestmark = pytest.mark.integration


def status(cfg: Config, *args: str, **env: str) -> Result:
    return CliRunner().invoke(main, ["status", *args], env={**env_of(cfg), **env})


def status_json(cfg: Config, *args: str, **env: str) -> tuple[int, dict[str, Any]]:
    out = status(cfg, "--json", *args, **env)
    assert out.exception is None or isinstance(out.exception, SystemExit), out.output
    report: dict[str, Any] = json.loads(out.stdout)
    return out.exit_code, report


def ready(queue: str) -> int:
    """A queue's ready messages, as the administrator sees them."""
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
    try:
        count: int = conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()
    return count


def test_a_healthy_site_exits_0_with_the_documented_keys(sites):
    paris, london = sites["PARIS"], sites["LONDON"]
    code, report = status_json(paris)
    assert code == 0, report
    # (no acked problem here: the keys of their items are held to the docs by the unit test)
    assert report["acked_problems"]["latest"] == []
    assert key_paths(report) == {p for p in key_paths(documented_example()) if "[]" not in p}
    assert (report["site"], report["healthy"], report["reasons"]) == ("PARIS", True, [])
    assert report["tables"] == {
        "orders": {
            "policy": "lww",
            "trigger_current": True,
            "trigger": "capture trigger up to date",
            "filter": None,
        }
    }
    # PARIS's own user counted its queue and both its dead-letter queues (archive site)
    assert report["broker"] == {
        "reachable": True,
        "queue": "SITE_PARIS",
        "queue_messages": 0,
        "dead_letters": 0,
        "dead_letter_queues": {"SITE_PARIS.dlq": 0, "SITE_PARIS_HISTO.dlq": 0},
    }
    out = status(london)
    assert out.exit_code == 0, out.output
    assert "UNHEALTHY" not in out.output
    assert "  broker             SITE_LONDON 0 message(s), SITE_LONDON.dlq 0 message(s)" in (
        out.output
    )
    # messages waiting in the site's queue (its bridge is not running) are counted, and no
    # reason by themselves
    publish_raw(b"{}", "MADRID", message_id=str(uuid.uuid4()))
    wait_for(lambda: ready("SITE_LONDON") == 1, 30, "the message in SITE_LONDON")
    code, report = status_json(london)
    assert (code, report["broker"]["queue_messages"]) == (0, 1)


def test_a_backlog_older_than_the_threshold_exits_1(sites):
    paris = sites["PARIS"]
    sql(db_of(paris), "INSERT INTO orders (id, customer) VALUES (1, 'a')")  # no bridge runs
    code, report = status_json(paris)
    assert (code, report["unpublished"]) == (0, 1)  # younger than 300 s
    assert report["oldest_unpublished"] >= 0
    code, report = status_json(paris, "--max-backlog-age", "0")
    assert (code, report["healthy"], report["max_backlog_age"]) == (1, False, 0.0)
    (reason,) = report["reasons"]
    assert reason.startswith("backlog: the oldest unpublished outbox row is ")
    # the configuration key, and the text form's UNHEALTHY line at the end
    out = status(paris, BRIDGE_STATUS_MAX_BACKLOG_AGE="0")
    assert out.exit_code == 1
    age = re.compile(r"is [0-9.]+s old")  # older at the second look
    assert age.sub("", out.output.splitlines()[-1]) == age.sub("", f"UNHEALTHY: {reason}")
    # once published and echoed, healthy again
    with running(paris):
        wait_for(lambda: status(paris, "--max-backlog-age", "0").exit_code == 0, 30, "healthy")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("amqp://paris:pw-x7q@127.0.0.1:1/{vhost}", "connection refused"),
        ("amqp://paris:pw-x7q@127.0.0.1:5680/{vhost}", "login refused"),
    ],
)
def test_an_unreachable_broker_exits_1_without_the_password(sites, url, says):
    env = {"BRIDGE_AMQP_URL": url.format(vhost=VHOST)}
    code, report = status_json(sites["PARIS"], **env)
    assert code == 1
    assert report["broker"] == {
        "reachable": False,
        "queue": "SITE_PARIS",
        "queue_messages": None,
        "dead_letters": None,
        "dead_letter_queues": {"SITE_PARIS.dlq": None, "SITE_PARIS_HISTO.dlq": None},
    }
    (reason,) = report["reasons"]
    assert reason.startswith("broker unreachable: cannot connect to RabbitMQ: amqp://paris:***@")
    assert says in reason
    out = status(sites["PARIS"], **env)
    assert out.exit_code == 1
    assert "  broker             unreachable" in out.output
    assert f"UNHEALTHY: {reason}" in out.output
    assert "pw-x7q" not in out.output


def test_a_missing_queue_is_a_reason(sites, fresh_topology):
    fresh_topology.queue_delete("SITE_LONDON.dlq")
    try:
        code, report = status_json(sites["LONDON"])
    finally:
        fresh_topology.queue_declare(
            "SITE_LONDON.dlq", durable=True, arguments={"x-queue-type": "quorum"}
        )
    assert code == 1
    assert report["broker"]["dead_letter_queues"] == {"SITE_LONDON.dlq": None}
    assert report["reasons"] == [
        "queue SITE_LONDON.dlq does not exist on the broker: run `bridge topology apply` "
        "with an administrator's amqp_url (docs/operations.md)"
    ]


def test_a_stale_trigger_exits_1(sites):
    paris = sites["PARIS"]
    sql(db_of(paris), "ALTER TABLE orders ADD COLUMN extra text")
    code, report = status_json(paris)
    assert code == 1
    assert report["tables"]["orders"]["trigger_current"] is False
    assert report["reasons"] == [
        "table orders: columns changed since the trigger was installed: run bridge "
        "install-triggers --table orders again"
    ]
    assert CliRunner().invoke(main, ["install-triggers"], env=env_of(paris)).exit_code == 0
    assert status_json(paris)[0] == 0


def test_dead_letters_waiting_exit_1_with_the_count(sites):
    london, paris = sites["LONDON"], sites["PARIS"]
    with running(london):  # its consumer dead-letters what is not JSON
        publish_raw(b"{not json", "MADRID", message_id=str(uuid.uuid4()))
        publish_raw(b"{not json", "MADRID", message_id=str(uuid.uuid4()))
        wait_for(lambda: ready("SITE_LONDON.dlq") == 2, 30, "two dead letters")
    code, report = status_json(london)
    assert code == 1
    assert report["broker"]["dead_letters"] == 2
    assert report["reasons"] == [
        "2 dead letter(s) waiting in SITE_LONDON.dlq: see them with `bridge dlq list`, then "
        "`bridge dlq retry` or `drop` them"
    ]
    # at the archive site, the archive's dead-letter queue counts too
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url_for("LONDON")))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish(
        DEAD_LETTER_EXCHANGE,
        "SITE_PARIS_HISTO.dlq",
        b"{}",
        pika.BasicProperties(user_id="london", delivery_mode=2),
        mandatory=True,
    )
    conn.close()
    wait_for(lambda: ready("SITE_PARIS_HISTO.dlq") == 1, 30, "the archive's dead letter")
    out = status(paris)
    assert out.exit_code == 1
    assert out.output.splitlines()[-1] == (
        "UNHEALTHY: 1 dead letter(s) waiting in SITE_PARIS_HISTO.dlq: see them with "
        "`bridge dlq --archive list`, then `bridge dlq --archive retry` or `drop` them"
    )


def test_an_unreadable_status_still_prints_json(sites):
    paris = sites["PARIS"]
    env = {"BRIDGE_DATABASE_URL": "postgresql://u:db-pw-x7@127.0.0.1:9/x"}
    out = status(paris, "--json", **env)
    assert out.exit_code == 1
    report = json.loads(out.stdout)
    assert report.keys() == {"site", "healthy", "reasons"}
    assert (report["site"], report["healthy"]) == ("PARIS", False)
    (reason,) = report["reasons"]
    assert reason.startswith("DatabaseError: cannot connect to PostgreSQL at ")
    assert out.stderr == f"Error: {reason}\n"
    assert "db-pw-x7" not in out.output
    # the text form: the usual one line
    out = status(paris, **env)
    assert (out.exit_code, out.stdout) == (1, "")
    assert out.stderr.startswith("Error: DatabaseError: cannot connect to PostgreSQL at ")
    # a configuration that cannot be read: no site known
    out = status(paris, "--json", BRIDGE_SITE="not a site")
    assert out.exit_code == 1
    assert json.loads(out.stdout)["site"] is None


def test_event_acks_as_json(sites):
    id_ = str(uuid.uuid4())
    out = status(sites["PARIS"], "--event", id_, "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == {
        "event": id_,
        "destinations": [
            {"site": "LONDON", "status": "pending", "reason": "", "acked_at": None},
            {"site": "MADRID", "status": "pending", "reason": "", "acked_at": None},
        ],
    }


def test_a_passive_declare_needs_no_permission_on_the_queue(fresh_topology):
    """What the probe relies on (docs/operations.md): RabbitMQ lets a site's user count a
    queue it has no permission on (LONDON's on PARIS's), and refuses it anything more."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url_for("LONDON")))
    try:
        ch = conn.channel()
        assert ch.queue_declare("SITE_PARIS_HISTO.dlq", passive=True).method.message_count == 0
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.queue_declare("SITE_PARIS_HISTO.dlq", durable=True)
        assert refused.value.reply_code == 403
    finally:
        conn.close()
