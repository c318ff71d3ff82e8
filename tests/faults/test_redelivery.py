"""Redelivery and duplicates reach a site: messages nacked and requeued again and again,
the same events published twice, and the consumer killed after its commit and before its
acknowledgement. Each event is applied once; the rest are skipped through the inbox, and
a change redelivered after a later change of the same row is skipped as superseded."""

from __future__ import annotations

import pika
import pytest

from bridge.broker import EVENTS_EXCHANGE
from tests.conftest import AMQP_ADMIN, amqp_url_for, db_of, sql, wait_for
from tests.faults.conftest import writers
from tests.faults.harness import depth, install_audit, processes, settle, tally

pytestmark = pytest.mark.faults

PER_SITE = 150  # rows written at PARIS and LONDON (each 5th updated, each 7th deleted)


def requeue_rounds(queue: str, rounds: int) -> int:
    """Take every message of `queue` and nack it back with requeue, `rounds` times (a
    consumer that keeps failing before its ack); the number of nacks."""
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
    nacked = 0
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1000)
        total = ch.queue_declare(queue, passive=True).method.message_count
        for _ in range(rounds):
            seen = 0
            for method, _props, _body in ch.consume(queue, inactivity_timeout=5):
                if method is None:
                    break
                seen += 1
                if seen == total:
                    ch.basic_nack(method.delivery_tag, multiple=True, requeue=True)
                    break
            nacked += seen
            ch.cancel()
            assert seen == total, f"round saw {seen} of {total} messages"
    finally:
        conn.close()
    return nacked


def republish(origin_cfg, archive_cfg) -> int:
    """Publish again, as `origin_cfg`'s broker user, every event of it the archive holds."""
    events = sql(
        db_of(archive_cfg),
        "SELECT event_id::text, type, event::text FROM bridge_archive WHERE origin = %s",
        origin_cfg.site,
    )
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url_for(origin_cfg.site)))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for event_id, type_, body in events:
            ch.basic_publish(
                EVENTS_EXCHANGE,
                "",
                body.encode(),
                pika.BasicProperties(
                    message_id=event_id,
                    type=type_,
                    user_id=origin_cfg.site.lower(),
                    delivery_mode=2,
                    content_type="application/json",
                ),
            )
    finally:
        conn.close()
    return len(events)


def test_redeliveries_and_duplicates_are_applied_once(sites, tmp_path):
    cfgs = list(sites.values())
    paris, london, madrid = sites["PARIS"], sites["LONDON"], sites["MADRID"]
    install_audit(cfgs)
    with processes([paris, london], tmp_path) as procs:
        with writers([paris, london], PER_SITE, pace=0) as ws:
            for w in ws:
                w.join(120)
        events = sum(w.events for w in ws)
        wait_for(lambda: depth(madrid.queue) == events, 120, f"{events} events for MADRID")
        nacked = requeue_rounds(madrid.queue, 3)
        twice = republish(paris, paris) + republish(london, paris)
        wait_for(lambda: depth(madrid.queue) == events + twice, 60, "duplicates queued")
        # MADRID comes up and dies after committing its first batch, before acking it
        procs[madrid.site] = p = type(procs[paris.site])(madrid, tmp_path)
        p.start(failpoints="consume.applied=1")
        wait_for(lambda: not p.alive(), 120, "MADRID killed between commit and ack")
        first_batch = sql(db_of(madrid), "SELECT count(*) FROM bridge_inbox")[0][0]
        p.start()
        settle(cfgs, sum(len(w.written) for w in ws), events)
        # the second copies sit behind the first ones: wait until MADRID has skipped them all
        wait_for(
            lambda: p.duplicates_skipped() >= twice + first_batch,
            120,
            "every second copy and every redelivery skipped",
        )
    t = tally(cfgs, events, procs)
    print(
        f"\nnacked and requeued {nacked}, published twice {twice}, first batch redelivered "
        f"after kill -9 {first_batch}; {t.line()}"
    )
    t.check()
    assert t.sites[madrid.site].inbox == events
    # every second copy and every redelivery of the killed batch was skipped, none applied
    assert t.sites[madrid.site].duplicates == twice + first_batch, t.line()
    # RabbitMQ 3.10 returns a crashed consumer's messages out of order (quorum queues with
    # a delivery limit): an insert may come after its update. The older change is skipped
    # as superseded, never applied over the newer one, and is not a conflict.
    assert all(s.conflicts == 0 for s in t.sites.values()), t.line()
