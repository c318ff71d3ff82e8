"""The consumer: one queue -> a handler (apply, or archive), acknowledged after commit.

Messages are taken in batches (up to `prefetch`), validated (JSON, fields, the origin
against the broker user that published it), handed to the handler in one database
transaction, and acknowledged only once that transaction committed. A message that is not
a valid event, or that the handler rejects, goes to the queue's dead-letter queue with the
reason in the `x-bridge-reason` header and the broker user RabbitMQ validated for it in
`x-bridge-user-id` (what `bridge dlq retry` trusts); the rest of the flow continues. If the
database is unreachable the batch is kept (unacknowledged) and retried after reconnecting, so a
database outage does not spend the messages' delivery limit.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pika
import pika.exceptions

from bridge import failpoints, marker, wire
from bridge.archive import ARCHIVE_DUPLICATE
from bridge.backoff import Backoff
from bridge.broker import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_HEADER,
    REPLAY_HEADER,
    Endpoints,
    broker_user_of,
    dead_letter_properties,
    describe,
    disconnect,
    keep_connected,
    one_event_properties,
)
from bridge.config import Config
from bridge.decision import APPLIED, DUPLICATE, REJECTED, SUPERSEDED, Outcome
from bridge.errors import BridgeError, DatabaseError, EventError, one_line
from bridge.event import Event
from bridge.progress import QueueProgress
from bridge.stats import APPLY_LAG, Stats

log = logging.getLogger(__name__)

LOOK_EVERY = 2.0  # seconds between looks at the own queue while nothing is delivered
DRAIN_REPORT_EVERY = 30.0  # seconds between progress lines while a backlog drains
BACKLOG = 10_000  # events waiting in the queue from which draining it is reported
MAX_BATCH_EVENTS = 5_000  # events per consumer batch (one transaction), messages permitting


class Handler(Protocol):
    dialect: Any  # its database's (what errors it raises)
    conn: Any  # its database connection (None until it connects)
    # events of earlier batches decided on in the last one (they were waiting), and how
    waited: list[tuple[Event, Outcome]]

    def apply_batch(self, events: Sequence[Event]) -> list[Outcome]: ...
    def reconnect(self) -> None: ...
    def close(self) -> None: ...


def validate(
    body: bytes,
    message_id: str | None,
    user: str | None,
    headers: Mapping[str, Any] | None = None,
    archive_site: str | None = None,
) -> list[Event]:
    """Decode a message (one event or a batch: bridge/wire.py) and check it against its
    AMQP properties: `user` is the broker user RabbitMQ validated for the publish, and must
    be the events' origin's; the message_id is the (first) event's id. Raises EventError.

    A replayed message (`x-bridge-replay` header: bridge replay / repair) carries events of
    any origin: it is trusted when the archive site's broker user published it (the
    archive stored each event after this same check), and its events are marked
    `relayed`."""
    batch = wire.decode(body)
    if not user:
        raise EventError("message has no user_id: its origin cannot be trusted")
    if message_id and message_id != batch[0].id:
        raise EventError(f"message_id {message_id!r} differs from event id")
    if headers and headers.get(REPLAY_HEADER) and archive_site is not None:
        if user != broker_user_of(archive_site):
            raise EventError(
                f"replayed message published by broker user {user!r}: only the archive "
                f"site's ({broker_user_of(archive_site)!r}) may replay events"
            )
        return [dataclasses.replace(e, relayed=True) for e in batch]
    origin = batch[0].origin  # a batch's events all have its origin (wire.decode)
    if user != broker_user_of(origin):
        raise EventError(f"origin {origin!r} does not match the publishing broker user {user!r}")
    return batch


class _Drain:
    """While a queue holds a backlog (BACKLOG events or more, estimated from its messages
    and the events per message taken lately), a line every DRAIN_REPORT_EVERY seconds: how
    many are left, the rate, the time to go; and one when it has caught up."""

    def __init__(self, site: str, queue: str) -> None:
        self.site, self.queue = site, queue
        self.since = time.monotonic()
        self.messages = 0
        self.events = 0
        self.draining = False

    def taken(self, messages: int, events: int, channel: Any) -> None:
        self.messages += messages
        self.events += events
        now = time.monotonic()
        if now - self.since < DRAIN_REPORT_EVERY:
            return
        left = channel.queue_declare(self.queue, passive=True).method.message_count
        per_message = self.events / self.messages if self.messages else 1.0
        events_left = round(left * per_message)
        seconds = now - self.since
        rate = self.events / seconds
        if events_left >= BACKLOG:
            log.info(
                "site=%s queue=%s draining: about %d events left (%d messages), %.0f events/s, "
                "about %s to go",
                self.site,
                self.queue,
                events_left,
                left,
                rate,
                _duration(left / (self.messages / seconds)) if self.messages else "?",
            )
            self.draining = True
        elif self.draining:
            log.info("site=%s queue=%s caught up: %d messages left", self.site, self.queue, left)
            self.draining = False
        self.since, self.messages, self.events = now, 0, 0


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"


def _events_in(pending: Sequence[_Delivery]) -> int:
    """Events in these messages, as their `x-bridge-events` header says (one if absent)."""
    total = 0
    for d in pending:
        n = (d.props.headers or {}).get(EVENTS_HEADER, 1)
        total += n if isinstance(n, int) and n > 0 else 1
    return total


def _dead_letter(
    d: _Delivery, event: Event | None, alone: bool
) -> tuple[bytes, pika.BasicProperties]:
    """What goes to the dead-letter queue: the message as it came if it is refused whole or
    carries that one event only (`alone`); else the event alone, in a message of its own
    (version 1), so that the rest of its batch, applied, is not retried with it."""
    if event is None or alone:
        return d.body, d.props
    return event.encode(), one_event_properties(d.props, event.id, event.type)


@dataclass
class _Delivery:
    tag: int
    props: pika.BasicProperties
    body: bytes


class Consumer:
    def __init__(
        self,
        config: Config,
        queue: str,
        handler: Handler,
        endpoints: Endpoints,
        stop: threading.Event,
        stats: Stats,
        progress: QueueProgress | None = None,
        acks: Callable[[Sequence[tuple[Event, Outcome]]], None] | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        # hands over what became of the events, for their emitters (AckSender.send)
        self.acks = acks
        self.handler = handler
        self.endpoints = endpoints
        self.stop = stop
        self.stats = stats
        self.progress = progress  # this site's own queue: how far it has been taken

    def run(self) -> None:
        def on_error(exc: BaseException) -> None:
            reason = describe(exc) if isinstance(exc, pika.exceptions.AMQPError) else one_line(exc)
            log.warning(
                "site=%s queue=%s consumer: %s; retrying", self.config.site, self.queue, reason
            )
            self.stats.add("consumer_reconnects")

        try:
            keep_connected(self._session, self.stop, on_error)
        finally:
            self.handler.close()

    def _session(self) -> None:
        conn = self.endpoints.blocking()
        try:
            channel = conn.channel()
            channel.basic_qos(prefetch_count=self.config.prefetch)
            dead_letters = conn.channel()
            dead_letters.confirm_delivery()
            pending: list[_Delivery] = []

            def on_message(_ch: Any, method: Any, props: Any, body: bytes) -> None:
                pending.append(_Delivery(method.delivery_tag, props, body))
                if self.progress is not None:
                    self.progress.delivered()

            try:
                tag = channel.basic_consume(self.queue, on_message)
            except pika.exceptions.ChannelClosedByBroker as exc:
                raise BridgeError(
                    f"cannot consume {self.queue}: {exc.reply_text}; run bridge topology apply "
                    "and check the broker user's read permission"
                ) from None
            log.info("site=%s consuming %s", self.config.site, self.queue)
            self.stats.link(self._part, True)
            next_look = time.monotonic() + LOOK_EVERY
            drain = _Drain(self.config.site, self.queue)
            while not self.stop.is_set():
                conn.process_data_events(time_limit=0.05 if pending else 0.5)
                if pending and (
                    len(pending) >= self.config.prefetch
                    or _events_in(pending) >= MAX_BATCH_EVENTS
                    or not self._more_waiting(conn, pending)
                ):
                    # deliveries that arrive while this batch is processed (the broker
                    # connection is serviced during database retries) go to a new list:
                    # the batch's ack must cover exactly what was applied
                    batch, pending = pending, []
                    taken = self._process(conn, channel, dead_letters, batch)
                    drain.taken(len(batch), taken, channel)
                elif not pending and self.progress and time.monotonic() >= next_look:
                    next_look = time.monotonic() + LOOK_EVERY
                    self._look(channel, self.progress)
            # stopping: end the deliveries, then finish all that was delivered, so that as
            # few messages as possible go back to the queue unacknowledged (RabbitMQ 3.10
            # returns those out of order); what arrives before the cancel is confirmed goes
            # back (pika rejects it)
            conn.process_data_events(time_limit=0)
            channel.basic_cancel(tag)
            if pending:
                batch, pending = pending, []
                self._process(conn, channel, dead_letters, batch)
        finally:
            self.stats.link(self._part, False)
            disconnect(conn)

    @property
    def _part(self) -> str:
        """The part of `bridge run` this consumer is (bridge/run.py)."""
        return "consumer" if self.queue == self.config.queue else "archiver"

    def _look(self, channel: Any, progress: QueueProgress) -> None:
        """Nothing in hand: is the queue empty? (What lets the dispatcher see a message
        lost from it at the end of the queue, where no later echo passes it.)"""
        try:
            at = progress.now()
        except (BridgeError, *self.handler.dialect.errors.any):
            progress.queue_busy()  # the database is away: nothing to conclude
            return
        ready = channel.queue_declare(self.queue, passive=True).method.message_count
        if ready:
            progress.queue_busy()
        else:
            progress.queue_empty(at)

    @staticmethod
    def _more_waiting(conn: pika.BlockingConnection, pending: list[_Delivery]) -> bool:
        before = len(pending)
        conn.process_data_events(time_limit=0)
        return len(pending) > before

    def _process(
        self,
        conn: pika.BlockingConnection,
        channel: Any,
        dead_letters: Any,
        batch: list[_Delivery],
    ) -> int:
        """Apply a batch of deliveries, dead-letter what is refused, ack them all; the
        number of events they carried (a message refused whole counts one)."""
        valid: list[tuple[_Delivery, Event]] = []
        # a message refused whole (event None), or one event of it
        rejected: list[tuple[_Delivery, Event | None, str]] = []
        carried: dict[int, int] = {}  # delivery tag -> its events
        markers: list[str] = []  # drain markers (bridge/marker.py), in order
        echoes = self.stats.timed and self.queue == self.config.queue  # (metrics)
        for d in batch:
            if marker.is_marker(d.props):
                markers.append(str(d.props.message_id))
                continue
            try:
                carried_events = validate(
                    d.body,
                    d.props.message_id,
                    d.props.user_id,
                    d.props.headers,
                    self.config.archive_site,
                )
            except EventError as exc:
                rejected.append((d, None, str(exc)))
                continue
            carried[d.tag] = len(carried_events)
            valid.extend((d, e) for e in carried_events)
            if echoes and carried_events[0].origin == self.config.site:
                self.stats.echoed(str(d.props.message_id))
        outcomes = self._apply(conn, [e for _, e in valid])
        if markers:
            # committed: every message before the marker is applied here
            self._record_marker(conn, markers[-1])
        failpoints.hit("consume.applied")
        skipped: Counter[str] = Counter()
        now = time.time() if self.stats.timed else None  # the apply lag's (metrics)
        for (d, event), outcome in zip(valid, outcomes, strict=True):
            self.stats.add(outcome.status)
            if now is not None and outcome.status == APPLIED:
                self.stats.observe(APPLY_LAG, event.origin, now - event.timestamp.timestamp())
            if outcome.status == REJECTED:
                rejected.append((d, event, outcome.reason))
            elif outcome.status in (DUPLICATE, ARCHIVE_DUPLICATE, SUPERSEDED):
                skipped["superseded" if outcome.status == SUPERSEDED else "duplicate"] += 1
        if skipped:
            # redeliveries (a crash before an ack, a republish): duplicates are skipped
            # through the inbox; an older change of a row whose later change from the same
            # site is already applied (redelivered out of order) is skipped as superseded
            log.info(
                "site=%s queue=%s %d duplicate(s) skipped, %d superseded of a batch of %d event(s)",
                self.config.site,
                self.queue,
                skipped["duplicate"],
                skipped["superseded"],
                len(valid),
            )
        for d, refused, reason in rejected:
            body, props = _dead_letter(d, refused, carried.get(d.tag) == 1)
            log.warning(
                "site=%s queue=%s %s dead-lettered: %s",
                self.config.site,
                self.queue,
                f"event={refused.id} table={refused.table}"
                if refused is not None
                else wire.log_context(d.body, d.props.message_id),
                reason,
            )
            dead_letters.basic_publish(
                DEAD_LETTER_EXCHANGE,
                f"{self.queue}.dlq",
                body,
                dead_letter_properties(
                    props, self.queue, reason, d.props.user_id, self.endpoints.user
                ),
                mandatory=True,
            )
            self.stats.add("dead_lettered")
        if rejected:
            failpoints.hit("consume.dead_lettered")
        channel.basic_ack(delivery_tag=max(d.tag for d in batch), multiple=True)
        failpoints.hit("consume.acked")
        if self.acks is not None:
            # after the commit and the ack of the batch, handed over to be published
            # (never waited on): a lost ack message costs nothing but the emitter's
            # knowing (a redelivery of the batch sends `duplicate`)
            results = [(e, o) for (_, e), o in zip(valid, outcomes, strict=True)]
            self.acks(results + self.handler.waited)
        return len(valid) + sum(1 for _, event, _ in rejected if event is None)

    def _record_marker(self, conn: pika.BlockingConnection, marker_id: str) -> None:
        backoff = Backoff()
        while True:
            try:
                if self.handler.conn is None or self.handler.conn.closed:
                    self.handler.reconnect()
                marker.record(self.handler.dialect, self.handler.conn, marker_id)
                log.info(
                    "site=%s queue=%s drain marker %s taken",
                    self.config.site,
                    self.queue,
                    marker_id,
                )
                return
            except (BridgeError, *self.handler.dialect.errors.any) as exc:
                log.warning(
                    "site=%s queue=%s drain marker not recorded (%s), retrying",
                    self.config.site,
                    self.queue,
                    one_line(exc),
                )
            if self.stop.is_set():
                raise DatabaseError("stopping while the database is unavailable")
            conn.sleep(backoff.next_delay())

    def _apply(self, conn: pika.BlockingConnection, batch: list[Event]) -> list[Outcome]:
        backoff = Backoff()
        while True:
            try:
                return self.handler.apply_batch(batch)
            except (DatabaseError, *self.handler.dialect.errors.lost) as exc:
                log.warning(
                    "site=%s queue=%s database unavailable (%s); batch of %d kept, retrying",
                    self.config.site,
                    self.queue,
                    one_line(exc),
                    len(batch),
                )
                self.stats.add("database_retries")
            if self.stop.is_set():
                raise DatabaseError("stopping while the database is unavailable")
            conn.sleep(backoff.next_delay())  # keeps the broker connection alive
            try:
                self.handler.reconnect()
            except (BridgeError, *self.handler.dialect.errors.any) as exc:
                log.warning(
                    "site=%s queue=%s reconnect to database failed: %s",
                    self.config.site,
                    self.queue,
                    one_line(exc),
                )
