"""Drain markers: how `bridge bootstrap` knows that a site has applied every message its
queue held at some moment, exactly.

A marker is a small message (AMQP type `bridge.marker`, no event) published to one site's
queue through the default exchange. The queue hands messages to its single active consumer
in order, and the consumer commits a batch before it records the markers the batch held
(bridge_meta `marker`). So once a site records a marker, every message that was in its queue
before the marker has been applied there and committed: nothing delivered and not yet
committed is left out, as a look at the queue's count of ready messages could.
"""

from __future__ import annotations

import uuid
from typing import Any

import pika
import pika.exceptions

from bridge import install
from bridge.broker import DEFAULT_EXCHANGE, Endpoints, describe, disconnect
from bridge.config import Config
from bridge.errors import BrokerError

MARKER_TYPE = "bridge.marker"
META_KEY = "marker"


def is_marker(props: pika.BasicProperties) -> bool:
    return bool(props.type == MARKER_TYPE)


def record(dialect: Any, conn: Any, marker: str) -> None:
    """Remember the latest marker taken from this site's queue (after the batch that held
    it committed)."""
    with conn.transaction(), conn.cursor() as cur:
        install.meta_put(dialect, cur, META_KEY, marker)


def recorded(dialect: Any, conn: Any) -> str | None:
    """The latest marker this site recorded, if any."""
    with conn.transaction(), conn.cursor() as cur:
        value = install.meta_get(dialect, cur, META_KEY)
    return None if value is None else str(value)


def publish(config: Config, queue: str) -> str:
    """Put a new marker at the end of `queue` (confirmed by the broker); its id."""
    marker = str(uuid.uuid4())
    conn = Endpoints.of(config).blocking()
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            DEFAULT_EXCHANGE,
            queue,
            b"{}",
            pika.BasicProperties(
                message_id=marker,
                type=MARKER_TYPE,
                delivery_mode=pika.DeliveryMode.Persistent,
                app_id="bridge",
            ),
            mandatory=True,
        )
    except pika.exceptions.UnroutableError:
        raise BrokerError(f"queue {queue} does not exist: run bridge topology apply") from None
    except pika.exceptions.AMQPError as exc:
        raise BrokerError(
            f"cannot put a marker in {queue}: {describe(exc)}; the broker user needs write on "
            "amq.default (scripts/cluster add-site-user grants it)"
        ) from None
    finally:
        disconnect(conn)
    return marker
