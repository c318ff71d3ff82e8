"""Declare the broker topology (`bridge topology apply`); idempotent.

- `bridge.events` fanout exchange -> quorum queue `SITE_<NAME>` per site and the archive
  queue `SITE_<ARCHIVE>_HISTO`, each single-active-consumer (per-site order) with a delivery
  limit, dead-lettered through `bridge.dlx` (direct) to `<queue>.dlq`.
- `bridge.replay` direct exchange -> each site's queue, with the site's name as routing
  key: what `bridge replay` and `bridge repair` send to one site only.
- Acknowledgements (bridge/acks.py), both modes declared whatever a site's `acks` says: a
  quorum queue `SITE_<NAME>.acks` per site, reached through the default exchange (direct
  mode), and the topic exchange `bridge.acks`, routing key `<ORIGIN>.<SENDER>`: bound to
  each site's acks queue with `<NAME>.*` and to the archive site's with `#` (topic mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import pika
import pika.exceptions

from bridge.broker import ACKS_EXCHANGE, DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE, REPLAY_EXCHANGE
from bridge.config import acks_queue, site_queue
from bridge.errors import BrokerError

DELIVERY_LIMIT = 20
ACKS_MAX_LENGTH = 100_000  # messages in an acks queue (each acks a batch of events)


def queue_names(sites: Sequence[str], archive_site: str) -> list[str]:
    return [site_queue(s) for s in sites] + [f"{site_queue(archive_site)}_HISTO"]


def acks_queue_names(sites: Sequence[str]) -> list[str]:
    return [acks_queue(s) for s in sites]


def apply(
    channel: pika.adapters.blocking_connection.BlockingChannel,
    sites: Sequence[str],
    archive_site: str,
    delivery_limit: int = DELIVERY_LIMIT,
) -> list[str]:
    """Declare exchanges, queues and bindings. Returns the queue names declared."""
    declared: list[str] = []
    try:
        channel.exchange_declare(EVENTS_EXCHANGE, exchange_type="fanout", durable=True)
        channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="direct", durable=True)
        channel.exchange_declare(REPLAY_EXCHANGE, exchange_type="direct", durable=True)
        for queue in queue_names(sites, archive_site):
            dlq = f"{queue}.dlq"
            channel.queue_declare(
                queue,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-single-active-consumer": True,
                    "x-delivery-limit": delivery_limit,
                    "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                    "x-dead-letter-routing-key": dlq,
                },
            )
            channel.queue_bind(queue, EVENTS_EXCHANGE)
            channel.queue_declare(dlq, durable=True, arguments={"x-queue-type": "quorum"})
            channel.queue_bind(dlq, DEAD_LETTER_EXCHANGE, routing_key=dlq)
            declared += [queue, dlq]
        channel.exchange_declare(ACKS_EXCHANGE, exchange_type="topic", durable=True)
        for site in sites:
            queue = acks_queue(site)
            channel.queue_declare(
                queue,
                durable=True,
                # a site whose bridge is not running does not grow it without bound: the
                # oldest acks go first (they are a report; the sync does not need them)
                arguments={"x-queue-type": "quorum", "x-max-length": ACKS_MAX_LENGTH},
            )
            channel.queue_bind(queue, ACKS_EXCHANGE, routing_key=f"{site}.*")
            if site == archive_site:  # the archive records every site's acks too
                channel.queue_bind(queue, ACKS_EXCHANGE, routing_key="#")
            declared.append(queue)
        for site in sites:
            channel.queue_bind(site_queue(site), REPLAY_EXCHANGE, routing_key=site)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 406:
            raise BrokerError(
                f"a queue or exchange exists with other settings ({exc.reply_text}); delete it "
                "(after draining it) or keep its settings, then run topology apply again"
            ) from None
        if exc.reply_code == 403:
            raise BrokerError(
                f"the broker user may not declare the topology ({exc.reply_text}); run "
                "`bridge topology apply --amqp-url` with an administrator's URL"
            ) from None
        raise BrokerError(f"topology apply failed: {exc}") from None
    return declared
