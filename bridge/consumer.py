"""The consumer: one queue -> a handler (apply, or archive), acknowledged after commit.

Messages are taken in batches (up to `prefetch`), validated (JSON, fields, the origin
against the broker user that published it), handed to the handler in one database
transaction, and acknowledged only once that transaction committed. A message that is not
a valid event, or that the handler rejects, goes to the queue's dead-letter queue with the
reason in the `x-bridge-reason` header and the broker user RabbitMQ validated for it in
`x-bridge-user-id` (what `bridge dlq retry` trusts); the rest of the flow continues. If the
database is unreachable the batch is kept (unacknowledged) and retried after reconnecting, so a
database outage does not spend the messages' delivery limit.

The handler runs on an apply thread of its own, so that the next batch is taken and decoded
while one is applied; every broker operation (ack, dead letters) stays on the consumer's
thread, and a batch is handed to the apply thread only after the one before was acked.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import pika
import pika.exceptions
import psycopg

from bridge import failpoints, wire
from bridge.archive import ARCHIVE_DUPLICATE
from bridge.backoff import Backoff, run_sessions
from bridge.broker import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_HEADER,
    Endpoints,
    dead_letter_properties,
    describe,
    one_event_properties,
)
from bridge.config import Config
from bridge.decision import DUPLICATE, REJECTED, SUPERSEDED, Outcome
from bridge.errors import BridgeError, BrokerLoginError, DatabaseError, EventError, one_line
from bridge.event import Event
from bridge.progress import QueueProgress
from bridge.stats import Stats

log = logging.getLogger(__name__)

LOOK_EVERY = 2.0  # seconds between looks at the own queue while nothing is delivered
DRAIN_REPORT_EVERY = 30.0  # seconds between progress lines while a backlog drains
BACKLOG = 10_000  # events waiting in the queue from which draining it is reported
MAX_BATCH_EVENTS = 5_000  # events per consumer batch (one transaction), messages permitting


class Handler(Protocol):
    def apply_batch(self, events: Sequence[Event]) -> list[Outcome]: ...
    def reconnect(self) -> None: ...
    def close(self) -> None: ...


def broker_user_of(site: str) -> str:
    """The broker user a site publishes with: its name in lower case."""
    return site.lower()


def validate(body: bytes, message_id: str | None, user: str | None) -> list[Event]:
    """Decode a message (one event or a batch: bridge/wire.py) and check it against its
    AMQP properties: `user` is the broker user RabbitMQ validated for the publish, and must
    be the events' origin's; the message_id is the (first) event's id. Raises EventError."""
    batch = wire.decode(body)
    if not user:
        raise EventError("message has no user_id: its origin cannot be trusted")
    origin = batch[0].origin  # a batch's events all have its origin (wire.decode)
    if user != broker_user_of(origin):
        raise EventError(f"origin {origin!r} does not match the publishing broker user {user!r}")
    if message_id and message_id != batch[0].id:
        raise EventError(f"message_id {message_id!r} differs from event id")
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


def _nothing() -> None:
    """Called on the consumer's thread to wake its loop (the apply thread is done)."""


@dataclass
class _Decoded:
    """A batch of deliveries and what they carry: the events, with their delivery; the
    deliveries (or events of them) refused, with why; the events each delivery carried."""

    batch: list[_Delivery]
    valid: list[tuple[_Delivery, Event]] = field(default_factory=list)
    rejected: list[tuple[_Delivery, Event | None, str]] = field(default_factory=list)
    carried: dict[int, int] = field(default_factory=dict)


@dataclass
class _Applying:
    """A decoded batch and the apply thread's work on it."""

    decoded: _Decoded
    future: Future[list[Outcome]]


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
    ) -> None:
        self.config = config
        self.queue = queue
        self.handler = handler
        self.endpoints = endpoints
        self.stop = stop
        self.stats = stats
        self.progress = progress  # this site's own queue: how far it has been taken
        self._pool: ThreadPoolExecutor | None = None  # the apply thread (see _session)

    def run(self) -> None:
        def on_error(exc: BaseException) -> None:
            reason = describe(exc) if isinstance(exc, pika.exceptions.AMQPError) else one_line(exc)
            log.warning(
                "site=%s queue=%s consumer: %s; retrying", self.config.site, self.queue, reason
            )
            self.stats.add("consumer_reconnects")

        try:
            run_sessions(
                self._session,
                self.stop,
                (BridgeError, pika.exceptions.AMQPError, OSError),
                on_error,
                fatal=(BrokerLoginError,),
            )
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
            self.handler.close()

    def _session(self) -> None:
        conn = self.endpoints.blocking()
        applying: _Applying | None = None  # the batch the apply thread works on
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
            next_look = time.monotonic() + LOOK_EVERY
            drain = _Drain(self.config.site, self.queue)
            # Pipelined: while the apply thread applies (and commits) one batch, this thread
            # takes the next from the broker and decodes it (`ahead`); it is handed over once
            # the first is acknowledged, so batches are applied and acknowledged in order.
            ahead: _Decoded | None = None
            while not self.stop.is_set():
                busy = bool(pending) or applying is not None
                conn.process_data_events(time_limit=0.05 if busy else 0.5)
                if applying is not None and applying.future.done():
                    taken = self._finish(conn, channel, dead_letters, applying)
                    drain.taken(len(applying.decoded.batch), taken, channel)
                    applying = None
                if (
                    ahead is None
                    and pending
                    and (
                        len(pending) >= self.config.prefetch
                        or _events_in(pending) >= MAX_BATCH_EVENTS
                        or not self._more_waiting(conn, pending)
                    )
                ):
                    # deliveries that arrive while this batch is processed go to a new
                    # list: the batch's ack must cover exactly what was applied
                    batch, pending = pending, []
                    ahead = self._decode(batch)
                if applying is None and ahead is not None:
                    applying, ahead = self._start(conn, ahead), None
                elif (
                    not pending
                    and applying is None
                    and self.progress
                    and time.monotonic() >= next_look
                ):
                    next_look = time.monotonic() + LOOK_EVERY
                    self._look(channel, self.progress)
            # stopping: end the deliveries, then finish all that was delivered, so that as
            # few messages as possible go back to the queue unacknowledged (RabbitMQ 3.10
            # returns those out of order); what arrives before the cancel is confirmed goes
            # back (pika rejects it)
            conn.process_data_events(time_limit=0)
            channel.basic_cancel(tag)
            for decoded in (ahead, self._decode(pending) if pending else None):
                if applying is not None:
                    self._finish(conn, channel, dead_letters, applying)
                    applying = None
                if decoded is not None:
                    applying = self._start(conn, decoded)
            if applying is not None:
                self._finish(conn, channel, dead_letters, applying)
                applying = None
        finally:
            if applying is not None:  # the session failed: let the apply thread end first
                with contextlib.suppress(BaseException):
                    applying.future.result()
            try:
                if conn.is_open:
                    conn.close()
            except pika.exceptions.AMQPError:
                pass

    def _look(self, channel: Any, progress: QueueProgress) -> None:
        """Nothing in hand: is the queue empty? (What lets the dispatcher see a message
        lost from it at the end of the queue, where no later echo passes it.)"""
        try:
            at = progress.now()
        except (BridgeError, psycopg.Error):
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

    def _decode(self, batch: list[_Delivery]) -> _Decoded:
        """The events of a batch of deliveries; the messages refused whole, with why."""
        decoded = _Decoded(batch)
        for d in batch:
            try:
                carried_events = validate(d.body, d.props.message_id, d.props.user_id)
            except EventError as exc:
                decoded.rejected.append((d, None, str(exc)))
                continue
            decoded.carried[d.tag] = len(carried_events)
            decoded.valid.extend((d, e) for e in carried_events)
        return decoded

    def _start(self, conn: pika.BlockingConnection, decoded: _Decoded) -> _Applying:
        """Hand a decoded batch to the apply thread; its end wakes this thread's loop."""
        return _Applying(decoded, self._submit(conn, decoded))

    def _submit(self, conn: pika.BlockingConnection, decoded: _Decoded) -> Future[list[Outcome]]:
        def wake(_future: Future[list[Outcome]]) -> None:
            with contextlib.suppress(pika.exceptions.AMQPError):
                conn.add_callback_threadsafe(_nothing)

        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"apply-{self.queue}")
        future = self._pool.submit(self.handler.apply_batch, [e for _, e in decoded.valid])
        future.add_done_callback(wake)
        return future

    def _finish(
        self,
        conn: pika.BlockingConnection,
        channel: Any,
        dead_letters: Any,
        applying: _Applying,
    ) -> int:
        """Wait for the batch's apply (applied again while the database is unavailable),
        then dead-letter what is refused and ack the batch; the number of events it
        carried (a message refused whole counts one)."""
        decoded = applying.decoded
        valid, rejected, carried = decoded.valid, list(decoded.rejected), decoded.carried
        outcomes = self._outcomes(conn, applying)
        failpoints.hit("consume.applied")
        skipped: Counter[str] = Counter()
        for (d, event), outcome in zip(valid, outcomes, strict=True):
            self.stats.add(outcome.status)
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
                "site=%s queue=%s message=%s dead-lettered: %s",
                self.config.site,
                self.queue,
                props.message_id,
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
        channel.basic_ack(delivery_tag=max(d.tag for d in decoded.batch), multiple=True)
        failpoints.hit("consume.acked")
        return len(valid) + sum(1 for _, event, _ in rejected if event is None)

    def _outcomes(self, conn: pika.BlockingConnection, applying: _Applying) -> list[Outcome]:
        """The outcomes of the apply thread's batch, waited for while the broker connection
        is serviced; the database unavailable: reconnect and apply the batch again."""
        backoff = Backoff()
        while True:
            while not applying.future.done():
                conn.process_data_events(time_limit=0.05)
            try:
                return applying.future.result()
            except (DatabaseError, psycopg.OperationalError) as exc:
                log.warning(
                    "site=%s queue=%s database unavailable (%s); batch of %d kept, retrying",
                    self.config.site,
                    self.queue,
                    one_line(exc),
                    len(applying.decoded.valid),
                )
                self.stats.add("database_retries")
            if self.stop.is_set():
                raise DatabaseError("stopping while the database is unavailable")
            conn.sleep(backoff.next_delay())  # keeps the broker connection alive
            try:
                self.handler.reconnect()
            except (BridgeError, psycopg.Error) as exc:
                log.warning(
                    "site=%s queue=%s reconnect to database failed: %s",
                    self.config.site,
                    self.queue,
                    one_line(exc),
                )
            applying.future = self._submit(conn, applying.decoded)
