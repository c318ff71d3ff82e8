"""`bridge dlq list|retry|drop` and the library behind it (bridge/dlq.py), against the real
cluster and PostgreSQL: messages the consumer or RabbitMQ dead-lettered are listed with
their reason without being disturbed, applied once when retried after a fix, put back with
the new reason when they still fail, and deleted on request."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pika
import pytest
from click.testing import CliRunner, Result

from bridge import dlq, topology
from bridge.broker import DEAD_LETTER_EXCHANGE, dead_letter_properties
from bridge.cli import main
from bridge.config import Config
from bridge.event import MAX_MESSAGE_BYTES
from tests.conftest import (
    ARCHIVE,
    SITES,
    amqp_url_for,
    db_of,
    make_config,
    rows,
    running,
    sql,
    wait_for,
)
from tests.integration.test_sync import event_body, publish_raw

pytestmark = pytest.mark.integration

PARIS, LONDON, MADRID = SITES


def env_of(cfg: Config) -> dict[str, str]:
    """The environment that makes the `bridge` command use this site's configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(
        {
            "BRIDGE_SITE": cfg.site,
            "BRIDGE_DATABASE_URL": cfg.database_url,
            "BRIDGE_AMQP_URL": cfg.amqp_url,
            "BRIDGE_SITES": ",".join(cfg.sites),
            "BRIDGE_ARCHIVE_SITE": cfg.archive_site,
            "BRIDGE_TABLES": ",".join(f"{t.name}:{t.policy}" for t in cfg.tables),
        }
    )
    return env


def bridge(cfg: Config, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env_of(cfg), input=input)


def dlq_count(channel: Any, cfg: Config) -> int:
    count: int = channel.queue_declare(
        dlq.dead_letter_queue(cfg), passive=True
    ).method.message_count
    return count


def dlq_holds(channel: Any, cfg: Config, n: int) -> bool:
    return dlq_count(channel, cfg) == n


def wait_dlq_holds(channel: Any, cfg: Config, n: int) -> None:
    """The count of queue.declare lags behind a quorum queue for a moment: wait for it."""
    wait_for(lambda: dlq_holds(channel, cfg, n), 30, f"{n} message(s) in the dead-letter queue")


def event_id(body: bytes) -> str:
    return str(json.loads(body)["id"])


def inbox_count(cfg: Config, id_: str) -> int:
    return int(sql(db_of(cfg), "SELECT count(*) FROM bridge_inbox WHERE event_id = %s", id_)[0][0])


def dead_letter_through_madrid(cfgs: dict[str, Config], channel: Any, *bodies: bytes) -> None:
    """Publish events as LONDON, let MADRID's bridge dead-letter them; a good event after
    them shows the flow went on."""
    madrid = cfgs["MADRID"]
    marker = event_body(LONDON, key=999, customer="marker")
    with running(madrid):
        for body in bodies:
            publish_raw(body, LONDON, message_id=event_id(body))
        publish_raw(marker, LONDON, message_id=event_id(marker))
        wait_for(lambda: inbox_count(madrid, event_id(marker)) == 1, 30, "the marker applied")
        wait_dlq_holds(channel, madrid, len(bodies))


def publish_to_dlq(
    cfg: Config, user_site: str, *messages: tuple[bytes, pika.BasicProperties]
) -> None:
    """Publish straight into a site's dead-letter queue as a site's broker user."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url_for(user_site)))
    ch = conn.channel()
    ch.confirm_delivery()
    for body, props in messages:
        ch.basic_publish(
            DEAD_LETTER_EXCHANGE, dlq.dead_letter_queue(cfg), body, props, mandatory=True
        )
    conn.close()


def test_list_shows_every_reason_and_leaves_the_queue_as_it_was(sites, fresh_topology):
    madrid = sites["MADRID"]
    not_json = b"{not json"
    forged = event_body(PARIS, key=1)  # PARIS's event, published by LONDON's user
    unknown_table = event_body(LONDON, table="salaries")
    with running(madrid):
        publish_raw(not_json, LONDON)
        publish_raw(forged, LONDON, message_id=event_id(forged))
        publish_raw(unknown_table, LONDON, message_id=event_id(unknown_table))
        wait_for(lambda: dlq_holds(fresh_topology, madrid, 3), 30, "three dead letters")
    # then 40 more, put there by MADRID's own user as its consumer does, in a known order
    later = [event_body(LONDON, key=100 + n) for n in range(40)]
    publish_to_dlq(
        madrid,
        MADRID,
        *[
            (
                body,
                dead_letter_properties(
                    pika.BasicProperties(message_id=event_id(body), type="orders.insert"),
                    madrid.queue,
                    "test reason",
                    "london",
                    "madrid",
                ),
            )
            for body in later
        ],
    )
    listed = dlq.list_dead_letters(madrid)
    assert len(listed) == 43
    by_reason = {d.id: d for d in listed[:3]}
    bad_json = next(d for d in listed[:3] if d.id.startswith("sha256:"))
    assert "not JSON" in bad_json.reason
    assert bad_json.publisher == "london"
    assert (
        "does not match the publishing broker user 'london'" in by_reason[event_id(forged)].reason
    )
    assert by_reason[event_id(forged)].origin == PARIS
    salaries = by_reason[event_id(unknown_table)]
    assert "'salaries' is not in site MADRID's sync set" in salaries.reason
    assert (salaries.type, salaries.origin, salaries.publisher) == (
        "salaries.insert",
        LONDON,
        "london",
    )
    assert salaries.dead_lettered_at is not None
    assert [d.id for d in listed[3:]] == [event_id(b) for b in later]

    # the CLI shows the same, in the same order, twice, and the queue keeps all of them
    out = bridge(madrid, "dlq", "list", "--json")
    assert out.exit_code == 0, out.output
    assert [d["id"] for d in json.loads(out.stdout)] == [d.id for d in listed]
    assert json.loads(out.stdout)[0]["reason"] == listed[0].reason
    text = bridge(madrid, "dlq", "list")
    assert text.exit_code == 0, text.output
    assert f"{event_id(unknown_table)}  salaries.insert  from LONDON" in text.stdout
    assert "reason: table 'salaries' is not in site MADRID's sync set" in text.stdout
    assert "43 message(s) in SITE_MADRID.dlq" in text.output
    assert [d.id for d in dlq.list_dead_letters(madrid)] == [d.id for d in listed]
    wait_dlq_holds(fresh_topology, madrid, 43)


def test_retry_after_the_missing_column_is_added_applies_once_and_empties_the_queue(
    sites, fresh_topology
):
    madrid = sites["MADRID"]
    body = event_body(LONDON, key=7, extra="from london")  # MADRID has no column `extra`
    id_ = event_id(body)
    dead_letter_through_madrid(sites, fresh_topology, body, body)  # delivered twice
    listed = dlq.list_dead_letters(madrid)
    assert [d.id for d in listed] == [id_, id_]
    assert "unknown column(s) ['extra']" in listed[0].reason

    # not fixed yet: both fail again and go back, with the reason
    out = bridge(madrid, "dlq", "retry", "--id", id_)
    assert out.exit_code == 1
    assert f"failed    {id_}: unknown column(s) ['extra']" in out.stdout
    assert "2 retried, 2 failed again, 0 id(s) not found" in out.output
    again = dlq.list_dead_letters(madrid)
    assert [(d.id, d.publisher) for d in again] == [(id_, "london"), (id_, "london")]
    assert "unknown column(s) ['extra']" in again[0].reason
    assert [r[0] for r in rows(madrid)] == [999]  # the marker only

    sql(db_of(madrid), "ALTER TABLE orders ADD COLUMN extra text")
    out = bridge(madrid, "dlq", "retry", "--all")
    assert out.exit_code == 0, out.output
    assert f"applied   {id_}" in out.stdout
    assert f"duplicate {id_}" in out.stdout
    assert sql(db_of(madrid), "SELECT id, extra FROM orders WHERE id = 7") == [(7, "from london")]
    assert inbox_count(madrid, id_) == 1
    assert dlq.list_dead_letters(madrid) == []
    wait_dlq_holds(fresh_topology, madrid, 0)

    # it is gone: asking for it again says so
    out = bridge(madrid, "dlq", "retry", "--id", id_)
    assert out.exit_code == 1
    assert f"not found {id_}" in out.stdout


def test_retry_after_the_table_joins_the_sync_set(sites, fresh_topology):
    madrid = sites["MADRID"]
    sql(db_of(madrid), "CREATE TABLE customers (id bigint PRIMARY KEY, name text)")
    body = json.dumps(
        {
            "id": str(uuid.uuid4()),
            "timestamp": "2026-01-01T00:00:00.000000Z",
            "origin": LONDON,
            "type": "customers.insert",
            "data": {
                "table": "customers",
                "op": "insert",
                "key": {"id": 3},
                "row": {"id": 3, "name": "Ada"},
            },
        }
    ).encode()
    dead_letter_through_madrid(sites, fresh_topology, body)
    report = dlq.retry(madrid, [event_id(body)])
    assert [(r.id, r.status) for r in report.results] == [(event_id(body), dlq.FAILED)]
    assert "not in site MADRID's sync set" in report.results[0].detail
    assert "not in site MADRID's sync set" in dlq.list_dead_letters(madrid)[0].reason

    fixed = make_config(MADRID, db_of(madrid), tables={"orders": "lww", "customers": "lww"})
    report = dlq.retry(fixed, None)
    assert [(r.id, r.status) for r in report.results] == [(event_id(body), "applied")]
    assert report.unknown == [] and report.failed == []
    assert sql(db_of(madrid), "SELECT id, name FROM customers") == [(3, "Ada")]
    assert dlq.list_dead_letters(fixed) == []


def test_retry_trusts_only_the_publisher_rabbitmq_validated(sites, fresh_topology):
    madrid = sites["MADRID"]
    forged = event_body(PARIS, key=1)  # published by LONDON's user
    dead_letter_through_madrid(sites, fresh_topology, forged)
    # LONDON's user writes into MADRID's dead-letter queue directly, claiming in the header
    # that RabbitMQ validated PARIS: its own user_id gives it away
    planted = event_body(PARIS, key=2)
    planted_props = dead_letter_properties(
        pika.BasicProperties(message_id=event_id(planted)), madrid.queue, "x", "paris", "london"
    )
    # and one without any user_id at all
    anonymous = event_body(LONDON, key=3)
    anonymous_props = pika.BasicProperties(
        message_id=event_id(anonymous), headers={"x-bridge-user-id": "london"}
    )
    publish_to_dlq(madrid, LONDON, (planted, planted_props), (anonymous, anonymous_props))
    listed = {d.id: d for d in dlq.list_dead_letters(madrid)}
    assert listed[event_id(planted)].publisher == "london"
    assert listed[event_id(anonymous)].publisher is None

    report = dlq.retry(madrid, None)
    reasons = {r.id: (r.status, r.detail) for r in report.results}
    assert reasons[event_id(forged)] == (
        dlq.FAILED,
        "origin 'PARIS' does not match the publishing broker user 'london'",
    )
    assert reasons[event_id(planted)] == (
        dlq.FAILED,
        "origin 'PARIS' does not match the publishing broker user 'london'",
    )
    assert reasons[event_id(anonymous)] == (
        dlq.FAILED,
        "message has no user_id: its origin cannot be trusted",
    )
    assert [r[0] for r in rows(madrid)] == [999]  # the marker only
    # back in the queue, still judged by the publisher RabbitMQ validated
    assert {d.id: d.publisher for d in dlq.list_dead_letters(madrid)} == {
        event_id(forged): "london",
        event_id(planted): "london",
        event_id(anonymous): None,
    }
    wait_dlq_holds(fresh_topology, madrid, 3)


def test_drop_by_id_and_all(sites, fresh_topology):
    madrid = sites["MADRID"]
    bodies = [event_body(LONDON, table="salaries", key=n) for n in range(3)]
    dead_letter_through_madrid(sites, fresh_topology, *bodies)
    ids = [event_id(b) for b in bodies]
    assert sorted(d.id for d in dlq.list_dead_letters(madrid)) == sorted(ids)
    missing = str(uuid.uuid4())

    out = bridge(madrid, "dlq", "drop", "--id", ids[1], "--id", missing, "--yes")
    assert out.exit_code == 1
    assert f"not found {missing}" in out.stdout
    assert "dropped 1 message(s) from SITE_MADRID.dlq" in out.stdout
    assert sorted(d.id for d in dlq.list_dead_letters(madrid)) == sorted([ids[0], ids[2]])

    out = bridge(madrid, "dlq", "drop", "--all", input="n\n")  # asks first; "no" keeps them
    assert out.exit_code == 1
    assert "delete 2 message(s) from SITE_MADRID.dlq for good?" in out.output
    assert sorted(d.id for d in dlq.list_dead_letters(madrid)) == sorted([ids[0], ids[2]])

    out = bridge(madrid, "dlq", "drop", "--all", input="y\n")
    assert out.exit_code == 0, out.output
    assert "dropped 2 message(s)" in out.stdout
    assert dlq.list_dead_letters(madrid) == []
    wait_dlq_holds(fresh_topology, madrid, 0)

    report = dlq.drop(madrid, [ids[0]])  # the library reports what it could not find
    assert report.dropped == [] and report.unknown == [ids[0]]


def test_a_poison_message_past_the_delivery_limit_is_listed_and_can_be_retried(
    sites, fresh_topology
):
    madrid = sites["MADRID"]
    for q in topology.queue_names(SITES, ARCHIVE):
        fresh_topology.queue_delete(q)
        fresh_topology.queue_delete(f"{q}.dlq")
    topology.apply(fresh_topology, SITES, ARCHIVE, delivery_limit=3)
    body = event_body(LONDON, key=5, customer="poison")
    publish_raw(body, LONDON, message_id=event_id(body))

    # a consumer that "crashes" on it every time: gives it back (nack with requeue)
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url_for(MADRID)))
    channel = conn.channel()
    channel.basic_qos(prefetch_count=1)
    deliveries: list[Any] = []

    def crash(ch: Any, method: Any, _props: Any, _body: bytes) -> None:
        deliveries.append(method)
        ch.basic_nack(method.delivery_tag, requeue=True)

    channel.basic_consume(madrid.queue, crash)

    def dead_lettered() -> bool:
        conn.process_data_events(time_limit=0.1)
        return dlq_count(fresh_topology, madrid) == 1

    wait_for(dead_lettered, 30, "RabbitMQ to dead-letter the poison message")
    conn.close()
    assert len(deliveries) > 3  # delivered past the limit of 3, then dead-lettered
    wait_for(
        lambda: fresh_topology.queue_declare(madrid.queue, passive=True).method.message_count == 0,
        30,
        "the poison message gone from SITE_MADRID",
    )

    out = bridge(madrid, "dlq", "list", "--json")
    assert out.exit_code == 0, out.output
    [listed] = json.loads(out.stdout)
    assert listed["id"] == event_id(body)
    assert listed["reason"].startswith("delivery limit exceeded: SITE_MADRID delivered it")
    assert (listed["origin"], listed["publisher"]) == (LONDON, "london")
    assert listed["dead_lettered_at"] is not None

    # RabbitMQ kept the user_id it validated: the event is trusted and applies
    out = bridge(madrid, "dlq", "retry", "--id", event_id(body))
    assert out.exit_code == 0, out.output
    assert sql(db_of(madrid), "SELECT customer FROM orders WHERE id = 5") == [("poison",)]
    wait_dlq_holds(fresh_topology, madrid, 0)


def test_an_oversized_message_is_dead_lettered_with_its_reason_and_the_flow_goes_on(
    sites, fresh_topology
):
    madrid = sites["MADRID"]
    body = event_body(LONDON, key=4, note="x" * (MAX_MESSAGE_BYTES + 1))
    assert len(body) > MAX_MESSAGE_BYTES
    dead_letter_through_madrid(sites, fresh_topology, body)  # the marker after it applied
    [listed] = dlq.list_dead_letters(madrid)
    assert listed.id == event_id(body)
    assert listed.size == len(body)
    assert listed.reason == f"message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}"
    assert [r[0] for r in rows(madrid)] == [999]

    report = dlq.retry(madrid, None)  # still too big: back in the queue, with the reason
    assert [r.status for r in report.results] == [dlq.FAILED]
    assert dlq.list_dead_letters(madrid)[0].reason == listed.reason


def test_errors_say_what_to_do(sites, fresh_topology):
    madrid = sites["MADRID"]
    # another site's broker user may not read MADRID's dead letters
    out = bridge(make_config(MADRID, db_of(madrid), amqp_url=amqp_url_for(LONDON)), "dlq", "list")
    assert out.exit_code == 1
    assert "BrokerError: cannot read SITE_MADRID.dlq" in out.output
    assert "check the broker user's read permission" in out.output
    assert "london-secret" not in out.output

    fresh_topology.queue_delete(dlq.dead_letter_queue(madrid))
    out = bridge(madrid, "dlq", "list")
    assert out.exit_code == 1
    assert "BrokerError: queue SITE_MADRID.dlq does not exist: run bridge topology apply" in (
        out.output
    )

    for args in (["--all", "--id", str(uuid.uuid4())], []):
        out = bridge(madrid, "dlq", "drop", *args, "--yes")
        assert out.exit_code == 2
        assert "give either --id EVENT_ID (repeatable) or --all" in out.output


def test_the_archives_dead_letters_are_listed_retried_into_the_archive_and_dropped(
    sites, fresh_topology
):
    """`bridge dlq --archive`: the archive queue's dead letters, at the archive site."""
    paris, london = sites["PARIS"], sites["LONDON"]
    archive_dlq = dlq.dead_letter_queue(paris, archive=True)
    assert archive_dlq == "SITE_PARIS_HISTO.dlq"
    good = event_body(LONDON, key=5, customer="late")
    with running(paris):
        publish_raw(b"{not json", LONDON, message_id=str(uuid.uuid4()))
        wait_for(
            lambda: (
                fresh_topology.queue_declare(archive_dlq, passive=True).method.message_count == 1
            ),
            30,
            "the archiver dead-lettered the bad message",
        )
    # an event the archiver could not store at the time, dead-lettered as LONDON sent it
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url_for(LONDON)))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish(
        DEAD_LETTER_EXCHANGE,
        archive_dlq,
        good,
        pika.BasicProperties(user_id="london", message_id=event_id(good), delivery_mode=2),
        mandatory=True,
    )
    conn.close()

    listed = bridge(paris, "dlq", "--archive", "list", "--json")
    assert listed.exit_code == 0, listed.output
    letters = json.loads(listed.stdout)
    assert len(letters) == 2
    assert "not JSON" in letters[0]["reason"]
    assert letters[1]["id"] == event_id(good)

    retried = bridge(paris, "dlq", "--archive", "retry", "--all")
    assert retried.exit_code == 1  # the bad message failed again
    assert f"archived  {event_id(good)}" in retried.output
    assert "back in SITE_PARIS_HISTO.dlq" in retried.output
    stored = sql(
        db_of(paris), "SELECT count(*) FROM bridge_archive WHERE event_id = %s", event_id(good)
    )
    assert stored[0][0] == 1
    assert rows(paris) == []  # stored in the archive, not applied: the archive queue's job

    dropped = bridge(paris, "dlq", "--archive", "drop", "--all", "--yes")
    assert dropped.exit_code == 0 and "dropped 1 message(s)" in dropped.output
    assert fresh_topology.queue_declare(archive_dlq, passive=True).method.message_count == 0

    refused = bridge(london, "dlq", "--archive", "list")
    assert refused.exit_code == 1 and "not the archive site" in refused.output
