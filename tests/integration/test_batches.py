"""Events batched per source transaction (bridge/wire.py), through the real cluster: a large
statement travels in a few messages and arrives whole; one bad event of a batch is
dead-lettered alone while the rest applies; a batch dead-lettered whole is retried event
by event; a message of a newer format is kept with a reason that says to upgrade."""

from __future__ import annotations

import json
import uuid

import pika
import pytest

from bridge import dlq, wire
from bridge.broker import dead_letter_properties
from tests.conftest import SITES, converged, db_of, rows, running, sql, wait_for
from tests.integration.test_dlq import bridge, publish_to_dlq, wait_dlq_holds
from tests.integration.test_sync import assert_verified, dlq_messages, event_body, publish_raw

pytestmark = pytest.mark.integration

PARIS, LONDON, MADRID = SITES


def batch_body(*bodies: bytes) -> bytes:
    return wire.encode(json.loads(bodies[0])["origin"], list(bodies))


def dispatcher_counts(cfg) -> dict[str, int]:
    found = sql(db_of(cfg), "SELECT value FROM bridge_meta WHERE key = 'dispatcher'")
    return {k: int(v) for k, v in found[0][0].items()} if found else {}


def test_a_large_statement_travels_in_a_few_messages_and_arrives_whole(sites):
    cfgs = list(sites.values())
    with running(*cfgs):
        sql(
            db_of(sites["PARIS"]),
            "INSERT INTO orders (id, customer, amount, note) "
            "SELECT g, 'c' || g, g / 100.0, repeat('é', g % 50) FROM generate_series(1, 1000) AS g",
        )
        wait_for(lambda: converged(cfgs) and len(rows(cfgs[1])) == 1000, 60, "the 1,000 rows")
        archived = "SELECT count(*), count(DISTINCT event_id) FROM bridge_archive"
        wait_for(
            lambda: sql(db_of(sites["PARIS"]), archived)[0] == (1000, 1000), 30, "archived once"
        )
    assert_verified(sites)
    counts = dispatcher_counts(sites["PARIS"])
    assert counts["sent"] == 1000
    # 100 events a message (message_events), one source transaction: 10 messages, a few
    # more if the dispatcher read the outbox while the statement's rows were committing
    assert 10 <= counts["messages"] <= 20, counts
    for cfg in cfgs[1:]:
        assert sql(db_of(cfg), "SELECT count(*) FROM bridge_inbox")[0][0] == 1000


def test_one_bad_event_of_a_batch_is_dead_lettered_alone_and_the_rest_applies(
    sites, fresh_topology
):
    madrid = sites["MADRID"]
    good1, bad, good2 = (
        event_body(LONDON, key=1),
        event_body(LONDON, key=2, extra="MADRID has no column extra"),
        event_body(LONDON, key=3),
    )
    body = batch_body(good1, bad, good2)
    with running(madrid) as bridges:
        publish_raw(body, LONDON, message_id=json.loads(good1)["id"])
        publish_raw(body, LONDON, message_id=json.loads(good1)["id"])  # a redelivery
        wait_for(lambda: len(rows(madrid)) == 2, 30, "the two good events applied")
        wait_for(
            lambda: bridges[MADRID].stats.snapshot().get("duplicate") == 2, 30, "duplicates seen"
        )
    assert [r[0] for r in rows(madrid)] == [1, 3]
    got = wait_for(lambda: dlq_messages(fresh_topology, madrid.queue), 10, "dead letters")
    # the bad event alone, as a version 1 message of its own, each time it came
    assert len(got) == 2
    for headers, dead in got:
        assert "version" not in json.loads(dead) and wire.decode(dead) == wire.decode(bad)
        assert "unknown column(s) ['extra']" in headers["x-bridge-reason"]
        assert headers.get("x-bridge-events") is None
    assert sql(db_of(madrid), "SELECT count(*) FROM bridge_inbox")[0][0] == 2


def test_a_batch_dead_lettered_whole_is_retried_event_by_event(sites, fresh_topology):
    """RabbitMQ dead-letters a whole batch (delivery limit): `bridge dlq retry` applies
    its events, puts back alone the one that still fails, and removes the batch."""
    madrid = sites["MADRID"]
    good, bad = event_body(LONDON, key=1), event_body(LONDON, key=2, extra="x")
    body = batch_body(good, bad)
    first = json.loads(good)["id"]
    props = dead_letter_properties(
        pika.BasicProperties(message_id=first, type=wire.BATCH_TYPE, user_id="london"),
        madrid.queue,
        "delivery limit exceeded",
        "london",
        "madrid",
    )
    publish_to_dlq(madrid, MADRID, (body, props))
    wait_dlq_holds(fresh_topology, madrid, 1)
    out = bridge(madrid, "dlq", "retry", "--all")
    assert out.exit_code == 1, out.output  # one event failed again
    assert f"applied   {first}" in out.stdout
    bad_id = json.loads(bad)["id"]
    assert f"failed    {bad_id}: unknown column(s) ['extra']" in out.stdout
    assert [r[0] for r in rows(madrid)] == [1]
    left = dlq.list_dead_letters(madrid)
    assert [(d.id, d.publisher) for d in left] == [(bad_id, "london")]
    assert "unknown column(s) ['extra']" in left[0].reason

    sql(db_of(madrid), "ALTER TABLE orders ADD COLUMN extra text")
    out = bridge(madrid, "dlq", "retry", "--all")
    assert out.exit_code == 0, out.output
    assert f"applied   {bad_id}" in out.stdout
    assert sql(db_of(madrid), "SELECT id, extra FROM orders ORDER BY id") == [(1, None), (2, "x")]
    wait_dlq_holds(fresh_topology, madrid, 0)


def test_a_message_of_a_newer_format_is_kept_with_a_reason_to_upgrade(sites, fresh_topology):
    madrid = sites["MADRID"]
    newer = json.dumps(
        {"version": wire.VERSION + 1, "origin": LONDON, "events": [json.loads(event_body(LONDON))]}
    ).encode()
    with running(madrid):
        publish_raw(newer, LONDON, message_id=str(uuid.uuid4()))
        publish_raw(event_body(LONDON, key=9), LONDON)
        wait_for(lambda: rows(madrid), 30, "the event after it applied")
    got = wait_for(lambda: dlq_messages(fresh_topology, madrid.queue), 10, "dead letter")
    assert [b for _, b in got] == [newer]
    assert "upgrade bridge at this site, then run bridge dlq retry" in got[0][0]["x-bridge-reason"]
