"""Acknowledgements: what became of an event at each site that received it, told back to
the site that emitted it (the seed's "advanced option"; docs/architecture.md).

- AckSender: after a batch committed and its messages were acknowledged, the consumer
  hands over one message per emitter of the batch (bridge/ackwire.py); a thread of
  `bridge run` publishes them on its own connection, with confirms, through the default
  exchange to `SITE_<ORIGIN>.acks` (`acks = "direct"`) or through the topic exchange
  `bridge.acks` with routing key `<ORIGIN>.<SENDER>` (`acks = "topic"`: to the emitter and
  the archive site). An ack that cannot be published (broker away, no acks queue, no
  permission, too many waiting) is dropped with a log line: it never holds up or fails the
  apply, and is not sent again (a redelivery of the event sends `duplicate`).
- AckReceiver (a thread of `bridge run`): the site's acks queue into `bridge_acks`, one row
  per event and receiving site; a later ack overwrites an earlier one (waiting -> applied),
  except `duplicate`, which only fills a row no other ack wrote (an earlier ack said more).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions

from bridge import ackwire
from bridge.ackwire import Ack, AckBatch
from bridge.archive import ARCHIVE_DUPLICATE, ARCHIVED
from bridge.broker import (
    ACKS_EXCHANGE,
    DEFAULT_EXCHANGE,
    Endpoints,
    describe,
    disconnect,
    keep_connected,
)
from bridge.config import Config, acks_queue
from bridge.decision import (
    APPLIED,
    CONFLICT,
    DUPLICATE,
    REJECTED,
    SUPERSEDED,
    WAITING,
    Outcome,
)
from bridge.dialects.base import close_quietly
from bridge.errors import AckError, BrokerError, one_line
from bridge.event import Event
from bridge.stats import Stats

log = logging.getLogger(__name__)

MAX_PENDING = 10_000  # ack messages handed over and not published yet (the broker away)
STOP_GRACE = 2.0  # seconds to publish what is still handed over when bridge stops

_STATUS = {
    APPLIED: ackwire.APPLIED,
    DUPLICATE: ackwire.DUPLICATE,
    SUPERSEDED: ackwire.SUPERSEDED,
    WAITING: ackwire.WAITING,
    ARCHIVED: ackwire.APPLIED,  # stored in the archive (topic mode)
    ARCHIVE_DUPLICATE: ackwire.DUPLICATE,
}


def ack_of(event: Event, outcome: Outcome) -> Ack | None:
    """What to tell the emitter of `event` about it; None for nothing (our own echo)."""
    if outcome.status in _STATUS:
        return Ack(event.id, _STATUS[outcome.status], outcome.reason)
    if outcome.status == CONFLICT:
        status = ackwire.FAILED if outcome.unwritable else ackwire.CONFLICT
        return Ack(event.id, status, outcome.reason)
    if outcome.status == REJECTED:
        return Ack(event.id, ackwire.FAILED, f"dead-lettered: {outcome.reason}")
    return None


def route(mode: str, origin: str, sender: str) -> tuple[str, str]:
    """(exchange, routing key) of an ack to `origin` from `sender` in this mode."""
    if mode == "topic":
        return ACKS_EXCHANGE, f"{origin}.{sender}"
    return DEFAULT_EXCHANGE, acks_queue(origin)


class AckSender:
    """Publishes the acks of the consumer's batches from a thread of its own (`run`), on a
    connection of its own: the consumer only hands them over (`send`) and never waits on
    the broker for them (a publish can block: a memory alarm blocks publishing connections,
    and the consumer's draining is what relieves it)."""

    def __init__(
        self, config: Config, endpoints: Endpoints, stop: threading.Event, stats: Stats
    ) -> None:
        self.config = config
        self.endpoints = endpoints
        self.stop = stop
        self.stats = stats
        self._queue: queue.Queue[AckBatch] = queue.Queue(maxsize=MAX_PENDING)
        self._said: set[str] = set()  # reasons for dropping acks already logged as warnings

    def send(self, results: Sequence[tuple[Event, Outcome]], archive: bool = False) -> None:
        """Hand over one message per emitter of the events of `results` (applied, or with
        `archive` archived, and committed); dropped, with a log line, if MAX_PENDING
        messages wait already. The archive acks this site's own events too."""
        by_origin: dict[str, list[Ack]] = {}
        for event, outcome in results:
            if event.origin == self.config.site and not archive:
                continue
            if event.repair:  # a new id `bridge repair` made: its origin never emitted it
                continue
            ack = ack_of(event, outcome)
            if ack is not None:
                by_origin.setdefault(event.origin, []).append(ack)
        for batch in ackwire.batches(by_origin, self.config.site, archive):
            try:
                self._queue.put_nowait(batch)
            except queue.Full:
                self._dropped(batch, f"{MAX_PENDING} ack messages wait to be published already")

    def run(self) -> None:
        def on_error(exc: BaseException) -> None:
            reason = describe(exc) if isinstance(exc, pika.exceptions.AMQPError) else one_line(exc)
            level = logging.DEBUG if reason in self._said else logging.WARNING
            self._said.add(reason)
            log.log(level, "site=%s acks publisher: %s; retrying", self.config.site, reason)

        keep_connected(self._session, self.stop, on_error)

    def _session(self) -> None:
        conn = self.endpoints.blocking()
        try:
            channel = self._channel(conn)
            deadline = None
            while deadline is None or time.monotonic() < deadline:
                if self.stop.is_set() and deadline is None:
                    # what the consumers handed over before they stopped, briefly
                    deadline = time.monotonic() + STOP_GRACE
                conn.process_data_events(time_limit=0)  # heartbeats
                try:
                    batch = self._queue.get(timeout=0.2)
                except queue.Empty:
                    if deadline is not None:
                        break
                    continue
                channel = self._publish(conn, channel, batch)
        finally:
            disconnect(conn)

    @staticmethod
    def _channel(conn: pika.BlockingConnection) -> Any:
        channel = conn.channel()
        channel.confirm_delivery()
        return channel

    def _publish(self, conn: pika.BlockingConnection, channel: Any, batch: AckBatch) -> Any:
        """Publish one ack message with a confirm; the channel to go on with."""
        exchange, key = route(self.config.acks, batch.origin, self.config.site)
        try:
            channel.basic_publish(
                exchange,
                key,
                ackwire.encode(batch),
                ackwire.properties(self.config.site),
                mandatory=True,
            )
        except pika.exceptions.UnroutableError:
            self._dropped(
                batch,
                f"no queue takes acks routed {key!r} on {exchange or 'the default exchange'}: "
                "run bridge topology apply",
            )
        except pika.exceptions.NackError:
            self._dropped(batch, "the broker refused the ack message (nack)")
        except pika.exceptions.ChannelClosedByBroker as exc:
            hint = (
                "; grant the site's broker user write on amq.default (scripts/cluster "
                "add-site-user) or set acks = topic"
                if exc.reply_code == 403 and self.config.acks == "direct"
                else ""
            )
            self._dropped(batch, f"{describe(exc)}{hint}")
            return self._channel(conn)
        except pika.exceptions.AMQPError as exc:  # the connection: a new session
            self._dropped(batch, describe(exc))
            raise
        else:
            self.stats.add("acks_sent")
        return channel

    def _dropped(self, batch: AckBatch, reason: str) -> None:
        self.stats.add("acks_dropped")
        level = logging.DEBUG if reason in self._said else logging.WARNING
        self._said.add(reason)
        log.log(
            level,
            "site=%s acks of %d event(s) of %s dropped (first %s): %s",
            self.config.site,
            len(batch.acks),
            batch.origin,
            batch.acks[0].event_id,
            reason,
        )


@dataclass
class _Delivery:
    tag: int
    props: pika.BasicProperties
    body: bytes


class AckReceiver:
    """Records the acks that arrive in this site's acks queue (a thread of `bridge run`)."""

    def __init__(
        self,
        config: Config,
        dialect: Any,
        endpoints: Endpoints,
        stop: threading.Event,
        stats: Stats,
    ) -> None:
        self.config = config
        self.dialect = dialect
        self.endpoints = endpoints
        self.stop = stop
        self.stats = stats
        self.queue = config.acks_queue
        self.conn: Any = None
        self.record = dialect.render("ack_record")

    def run(self) -> None:
        said: set[str] = set()

        def on_error(exc: BaseException) -> None:
            reason = describe(exc) if isinstance(exc, pika.exceptions.AMQPError) else one_line(exc)
            # the same reason again (no acks queue yet: an older topology) is not repeated
            # every few seconds at WARNING; acks are a report, the rest of bridge runs on
            level = logging.DEBUG if reason in said else logging.WARNING
            said.add(reason)
            log.log(
                level, "site=%s queue=%s acks: %s; retrying", self.config.site, self.queue, reason
            )
            close_quietly(self.conn)  # the database's, if it failed: connect again
            self.conn = None

        try:
            keep_connected(self._session, self.stop, on_error, also=self.dialect.errors.any)
        finally:
            close_quietly(self.conn)

    def _session(self) -> None:
        conn = self.endpoints.blocking()
        try:
            channel = conn.channel()
            channel.basic_qos(prefetch_count=self.config.prefetch)
            pending: list[_Delivery] = []

            def on_message(_ch: Any, method: Any, props: Any, body: bytes) -> None:
                pending.append(_Delivery(method.delivery_tag, props, body))

            try:
                channel.basic_consume(self.queue, on_message)
            except pika.exceptions.ChannelClosedByBroker as exc:
                raise BrokerError(
                    f"cannot consume {self.queue}: {exc.reply_text}; run bridge topology apply "
                    "and check the broker user's read permission"
                ) from None
            log.info("site=%s consuming %s", self.config.site, self.queue)
            while not self.stop.is_set():
                conn.process_data_events(time_limit=0.05 if pending else 0.5)
                if pending and not self._more_waiting(conn, pending):
                    batch, pending = pending, []
                    self._record(batch)
                    channel.basic_ack(delivery_tag=batch[-1].tag, multiple=True)
        finally:
            disconnect(conn)

    def _more_waiting(self, conn: pika.BlockingConnection, pending: list[_Delivery]) -> bool:
        if len(pending) >= self.config.prefetch:
            return False
        before = len(pending)
        conn.process_data_events(time_limit=0)
        return len(pending) > before

    def _record(self, deliveries: Sequence[_Delivery]) -> None:
        """Record the acks of these messages in one transaction; a malformed or untrusted
        message is dropped with a log line."""
        batches: list[AckBatch] = []
        for d in deliveries:
            try:
                batch = ackwire.decode(d.body, d.props.user_id)
                if batch.origin != self.config.site and not self.config.is_archive:
                    raise AckError(f"acks of {batch.origin}'s events are not this site's")
                if batch.archive and batch.site != self.config.archive_site:
                    raise AckError(f"{batch.site} is not the archive site")
            except AckError as exc:
                log.warning(
                    "site=%s queue=%s ack message %s dropped: %s",
                    self.config.site,
                    self.queue,
                    d.props.message_id,
                    exc,
                )
                self.stats.add("acks_refused")
                continue
            batches.append(batch)
        if not batches:
            return
        if self.conn is None or self.conn.closed:
            close_quietly(self.conn)
            self.conn = self.dialect.connect(self.config.database_url)
        with self.conn.transaction(), self.conn.cursor() as cur:
            for batch in batches:
                for ack in batch.acks:
                    cur.execute(
                        self.record,
                        {
                            "id": ack.event_id,
                            "origin": batch.origin,
                            "site": batch.destination,
                            "status": ack.status,
                            "reason": ack.reason or None,
                        },
                    )
        self.stats.add("ack_messages_received", len(batches))
        self.stats.add("acks_received", sum(len(b.acks) for b in batches))
        for batch in batches:
            for ack in batch.acks:
                if ack.status in (ackwire.FAILED, ackwire.CONFLICT):
                    log.info(
                        "site=%s event=%s %s at %s: %s",
                        self.config.site,
                        ack.event_id,
                        ack.status,
                        batch.destination,
                        ack.reason,
                    )
