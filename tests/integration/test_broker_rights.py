"""The least-privilege broker users of `scripts/cluster add-site-user`, on the real cluster.

A site's user may read only its own queues (`SITE_<SITE>`, its `.dlq` and `.acks`; the
archive site's user also `SITE_<ARCHIVE>_HISTO` and its `.dlq`), write only to bridge's
exchanges, publish only under its own name (RabbitMQ checks `user_id`), never change the
topology, and only the archive site's user may write to `bridge.replay`. Each refusal is
asked of RabbitMQ for real, and each case also shows the right the site does have, so a
test that passes because nothing works at all is not possible.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from tests.conftest import AMQP_ADMIN, ARCHIVE, amqp_url_for

pytestmark = pytest.mark.integration

OTHER = "LONDON"  # a site that is not the archive
ACCESS_REFUSED = 403
PRECONDITION_FAILED = 406


@pytest.fixture
def channel_of(fresh_topology: Any) -> Iterator[Callable[[str], BlockingChannel]]:
    """A channel of a site's own broker user, on a connection closed at the end."""
    conns: list[pika.BlockingConnection] = []

    def open_channel(site: str) -> BlockingChannel:
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url_for(site)))
        conns.append(conn)
        ch = conn.channel()
        ch.confirm_delivery()
        return ch

    yield open_channel
    for conn in conns:
        with contextlib.suppress(pika.exceptions.AMQPError):
            conn.close()
    # what the positive cases published: gone before the next test
    admin = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
    try:
        ch = admin.channel()
        for q in ("SITE_PARIS", "SITE_LONDON", "SITE_MADRID", f"SITE_{ARCHIVE}_HISTO"):
            ch.queue_purge(q)
    finally:
        admin.close()


def refused(action: Callable[[], Any]) -> int:
    """The AMQP reply code with which the broker closed the channel on `action`."""
    with pytest.raises(ChannelClosedByBroker) as caught:
        action()
    return int(caught.value.reply_code)


def consumes(ch: BlockingChannel, queue: str) -> None:
    """Start consuming `queue` (the broker answers consume-ok, or closes the channel: the
    queues are quorum queues with a single active consumer, where basic.get is refused
    whatever the rights), then cancel."""
    tag = ch.basic_consume(queue, lambda *a: None)
    assert tag in ch.consumer_tags
    ch.basic_cancel(tag)


def publish(ch: BlockingChannel, exchange: str, user: str, key: str = "") -> None:
    ch.basic_publish(
        exchange, key, b"{}", pika.BasicProperties(user_id=user, delivery_mode=2), mandatory=False
    )


def test_a_site_reads_its_own_queues_and_no_other_sites(channel_of):
    own = channel_of(OTHER)
    for queue in (f"SITE_{OTHER}", f"SITE_{OTHER}.dlq", f"SITE_{OTHER}.acks"):
        consumes(own, queue)
    for queue in (
        f"SITE_{ARCHIVE}",
        f"SITE_{ARCHIVE}.dlq",
        f"SITE_{ARCHIVE}.acks",
        f"SITE_{ARCHIVE}_HISTO",
        "SITE_MADRID",
    ):
        ch = channel_of(OTHER)
        assert (
            refused(lambda ch=ch, q=queue: ch.basic_consume(q, lambda *a: None)) == ACCESS_REFUSED
        )


def test_the_archive_site_reads_the_archive_queue(channel_of):
    ch = channel_of(ARCHIVE)
    for queue in (f"SITE_{ARCHIVE}_HISTO", f"SITE_{ARCHIVE}_HISTO.dlq"):
        consumes(ch, queue)


def test_a_site_publishes_under_its_own_name_only(channel_of):
    own = channel_of(OTHER)
    publish(own, "bridge.events", OTHER.lower())  # confirmed: raises if not
    for user in (ARCHIVE.lower(), "admin"):
        ch = channel_of(OTHER)
        # RabbitMQ compares user_id with the connection's user
        assert refused(lambda ch=ch, u=user: publish(ch, "bridge.events", u)) == (
            PRECONDITION_FAILED
        )


def test_only_the_archive_site_writes_to_the_replay_exchange(channel_of):
    publish(channel_of(ARCHIVE), "bridge.replay", ARCHIVE.lower(), key="NOWHERE")
    ch = channel_of(OTHER)
    assert refused(lambda: publish(ch, "bridge.replay", OTHER.lower(), key=ARCHIVE)) == (
        ACCESS_REFUSED
    )


@pytest.mark.parametrize("site", [OTHER, ARCHIVE])
def test_no_site_user_changes_the_topology(channel_of, site):
    attempts: list[Callable[[BlockingChannel], Any]] = [
        lambda ch: ch.queue_declare("SITE_INTRUDER", durable=True),
        lambda ch: ch.queue_delete(f"SITE_{site}"),
        lambda ch: ch.queue_purge(f"SITE_{OTHER if site == ARCHIVE else ARCHIVE}"),
        lambda ch: ch.exchange_declare("bridge.intruder", "fanout", durable=True),
        lambda ch: ch.exchange_delete("bridge.events"),
        lambda ch: ch.queue_bind(f"SITE_{site}", "bridge.replay", routing_key="x"),
        lambda ch: ch.queue_unbind(f"SITE_{site}", "bridge.events"),
    ]
    for attempt in attempts:
        ch = channel_of(site)
        assert refused(lambda ch=ch, attempt=attempt: attempt(ch)) == ACCESS_REFUSED
    # what it may do with its own queue: declare it passively (bridge status, the consumer)
    ok = channel_of(site).queue_declare(f"SITE_{site}", passive=True)
    assert ok.method.message_count >= 0
