"""The dispatcher: outbox -> RabbitMQ, in outbox order, with publisher confirms in flight.

It wakes on the database's notification (PostgreSQL LISTEN/NOTIFY), or reads the outbox every
`idle_poll` (50 ms) where the database has none (MariaDB, SQL Server, Oracle). Captures notify only
while it waits for one (an advisory lock it holds, so that the application's commits are not
serialised by notifications: sql_templates/postgresql/_wakeup.sql.j2); while a capturing
transaction is open it cannot wait and reads again every `BUSY_POLL`; and it polls every
`poll_interval` as a safety net. Consecutive rows of one transaction go in one message
(bridge/wire.py). Up to `max_in_flight` rows await their publish's confirm at once;
a row is marked published only after the broker confirmed it (the quorum queues have it on a
majority of nodes), or dropped then if its echo already came back (outbox_delete.sql.j2).
Each read also looks for the seqs the in-order read passed over lately (a transaction
committed after a later one was read): their rows go as soon as they commit. A sweep
publishes what the reads left behind: such rows older than GAP_TTL, and rows whose publish
was not confirmed (refused, or the connection was lost first: a new session reads the outbox
from its start). A confirmed row is published again only on evidence that this site's own
queue lost it: its consumer has taken every message confirmed after it and the row's echo
never came (bridge/progress.py). A slow queue is no such evidence: republishing into it
would only lengthen every queue. Receivers drop duplicates through their inbox. A session
advisory lock keeps a single dispatcher per site database. What was sent, confirmed and sent
again is added to `bridge_meta` (`dispatcher`) for `bridge status`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import PollEvents

from bridge import event, failpoints, wire
from bridge.broker import (
    EVENTS_EXCHANGE,
    EVENTS_HEADER,
    Endpoints,
    describe,
    keep_connected,
    properties,
    refused_at_start,
)
from bridge.config import Config
from bridge.errors import BridgeError, BrokerError, DatabaseError, one_line
from bridge.progress import QueueProgress
from bridge.redaction import redact
from bridge.stats import Stats

log = logging.getLogger(__name__)

TICK = 0.1  # seconds between checks of the stop flag and the timers
BUSY_POLL = 0.02  # seconds between reads while a capturing transaction is open
GAP_TTL = 10.0  # seconds a seq passed over is looked for by every read (then: the sweep)
MAX_GAPS = 10_000  # seqs passed over that are looked for at once
COUNTS_EVERY = 10.0  # seconds between additions to the counters in bridge_meta


def message(row: tuple[Any, ...], user: str) -> tuple[bytes, pika.BasicProperties]:
    """The message of one outbox row (as `outbox_fetch` reads it, the payload as JSON text),
    published by the site's broker user `user`."""
    return batch_message([row], user)


def batch_message(rows: Sequence[tuple[Any, ...]], user: str) -> tuple[bytes, pika.BasicProperties]:
    """The message of consecutive outbox rows of one transaction (bridge/wire.py): the
    event itself for one row, a version 2 batch for several."""
    bodies = [_body(row) for row in rows]
    return _message(rows, bodies, user)


def _body(row: tuple[Any, ...]) -> bytes:
    _seq, event_id, created_at, origin, type_, payload = row[:6]
    return event.encode(event_id, created_at, origin, type_, payload)


def _message(
    rows: Sequence[tuple[Any, ...]], bodies: Sequence[bytes], user: str
) -> tuple[bytes, pika.BasicProperties]:
    _seq, event_id, created_at, origin, type_ = rows[0][:5]
    props = properties(event_id, type_, created_at, origin, user)
    if len(rows) > 1:
        props.type = wire.BATCH_TYPE
        assert props.headers is not None
        props.headers[EVENTS_HEADER] = len(rows)
    return wire.encode(origin, bodies), props


class Dispatcher:
    def __init__(
        self,
        config: Config,
        dialect: Any,
        endpoints: Endpoints,
        stop: threading.Event,
        stats: Stats,
        progress: QueueProgress | None = None,
    ) -> None:
        self.config = config
        self.dialect = dialect
        self.endpoints = endpoints
        self.stop = stop
        self.stats = stats
        self.progress = progress  # how far the own queue was taken: None never republishes

    def run(self) -> None:
        """Publish until stop is set, reconnecting to the database and broker as needed."""

        def on_error(exc: BaseException) -> None:
            log.warning("site=%s dispatcher: %s; retrying", self.config.site, one_line(exc))
            self.stats.add("dispatcher_reconnects")

        keep_connected(
            lambda: _Session(self).run(), self.stop, on_error, also=self.dialect.errors.any
        )


@dataclass(frozen=True)
class _Sent:
    seqs: tuple[int, ...]  # the outbox rows of the message
    event_id: str  # its message_id: the first event's id
    at: float


class _Session:
    """One database connection and one broker connection, until either fails or we stop."""

    def __init__(self, owner: Dispatcher) -> None:
        self.o = owner
        self.cfg = owner.config
        d = owner.dialect
        self.notified = bool(d.wakes_on_notify)  # else: reads every d.idle_poll when idle
        wake_up = ("outbox_listen", "dispatcher_wait", "dispatcher_woken") if self.notified else ()
        self.sql = {
            n: d.render(n)
            for n in (
                "outbox_fetch",
                "outbox_fetch_stragglers",
                "outbox_last_seq",
                "outbox_mark_published",
                "dispatcher_lease",
                "meta_add",
                *wake_up,
            )
        }
        self.db: Any = None
        self.conn: pika.SelectConnection | None = None
        self.channel: Any = None
        self.error: Exception | None = None
        self.url = ""
        self.closing = False
        self.cursor = 0  # highest seq read by the in-order fetch
        # seqs the in-order fetch passed over (a transaction still open when a later one
        # was read, or rolled back): read again with it for GAP_TTL, then left to the sweep
        self.gaps: dict[int, float] = {}
        self.base = 0  # the last seq handed out when this session began: gaps after it
        self.next_tag = 0
        self.in_flight: dict[int, _Sent] = {}  # delivery tag -> what was sent
        self.rows_in_flight = 0  # outbox rows in the messages of in_flight
        self.confirmed: list[int] = []  # seqs confirmed, not yet marked published
        # seqs confirmed but not marked, their row locked by the consumer applying its echo:
        # marked at the next _mark_confirmed; the sweep leaves them alone meanwhile (for
        # republish_after at most, like published rows)
        self.unmarked: dict[int, float] = {}
        self.returned: set[int] = set()  # seqs the broker could not route
        self.pump_scheduled = False
        self.poll_scheduled = False  # a read BUSY_POLL from now
        self.waiting = False  # holds the wake-up lock: captures notify
        self.more = False  # the last read filled the window: more rows may be waiting
        self.read_any = False  # the last read found rows
        self.last_poll = 0.0
        self.last_sweep = time.monotonic()
        self.close_deadline = 0.0
        self.counts: Counter[str] = Counter()  # not yet added to bridge_meta
        self.last_count = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------
    def run(self) -> None:
        self.db = self.o.dialect.connect(self.cfg.database_url)
        try:
            row = self.db.execute(self.sql["dispatcher_lease"]).fetchone()
            if not row or not row[0]:
                raise DatabaseError(
                    "another dispatcher already publishes this site's outbox (lease held); "
                    "run a single `bridge run` per site"
                )
            if self.notified:
                self.db.execute(self.sql["outbox_listen"])
                self.db.add_notify_handler(self._on_notify)
            self.base = self.db.execute(self.sql["outbox_last_seq"]).fetchone()[0]
            self.url = self.o.endpoints.next_url()
            log.info("site=%s dispatcher connecting to %s", self.cfg.site, redact(self.url))
            self.conn = pika.SelectConnection(
                self.o.endpoints.parameters(self.url),
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
            )
            if self.notified:
                self.conn.ioloop.add_handler(
                    self.db.fileno(), self._on_db_readable, PollEvents.READ
                )
            self.conn.ioloop.call_later(TICK, self._tick)
            self.conn.ioloop.start()
        finally:
            try:
                if self.conn is not None and self.notified:
                    self.conn.ioloop.remove_handler(self.db.fileno())
            except Exception:  # noqa: BLE001 - the loop is gone already
                pass
            self.db.close()
            self.o.stats.link("dispatcher", False)
        if self.error is not None:
            raise self.error

    def _on_open(self, conn: pika.SelectConnection) -> None:
        self.o.endpoints.connected()
        conn.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, conn: pika.SelectConnection, exc: BaseException) -> None:
        self.error = self.o.endpoints.failure(
            [f"{redact(self.url)}: {describe(exc)}"], refused_at_start(exc)
        )
        conn.ioloop.stop()

    def _on_closed(self, conn: pika.SelectConnection, reason: BaseException) -> None:
        if not self.closing and self.error is None:
            self.error = BrokerError(f"broker connection closed: {describe(reason)}")
        conn.ioloop.stop()

    def _on_channel_open(self, channel: Any) -> None:
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm)
        self.o.stats.link("dispatcher", True)
        log.info("site=%s dispatcher ready", self.cfg.site)
        self._wake()

    def _on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        if not self.closing and self.error is None:
            hint = ""
            if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
                if reason.reply_code == 404:
                    hint = "; declare the topology first: bridge topology apply"
                elif reason.reply_code == 403:
                    hint = "; check the broker user's write permission on bridge.events"
            self.error = BrokerError(f"publish channel closed: {describe(reason)}{hint}")
        self._close()

    def _close(self) -> None:
        self.closing = True
        assert self.conn is not None
        if self.conn.is_open:
            self.conn.close()
        elif self.conn.is_closed:
            self.conn.ioloop.stop()

    # -- wake-ups ----------------------------------------------------------------------
    def _wake(self) -> None:
        """Publish (and mark what was confirmed) as soon as the loop is free, once."""
        if not self.pump_scheduled and self.conn is not None and not self.conn.is_closed:
            self.pump_scheduled = True
            self.conn.ioloop.call_later(0, self._pump)

    def _on_notify(self, _notify: Any) -> None:
        self._wake()

    def _on_db_readable(self, _fd: int, _events: int) -> None:
        # guarded: a lost database connection ends the session like any database error,
        # closing the broker connection (raised out of the loop, it left the connection
        # open, unserviced, until the broker dropped it for missed heartbeats)
        self._guarded(self._take_notifications)
        if self.error is not None and self.conn is not None:  # the socket stays readable
            with contextlib.suppress(Exception):  # removed already
                self.conn.ioloop.remove_handler(_fd)

    def _take_notifications(self) -> None:
        pgconn = self.db.pgconn
        pgconn.consume_input()  # psycopg.OperationalError if the connection is lost
        while pgconn.notifies() is not None:
            self._wake()

    def _guarded(self, step: Any) -> None:
        """Run a step; a database or bridge error ends the session (it is retried)."""
        try:
            step()
        except (*self.o.dialect.errors.any, BridgeError) as exc:
            self.error = exc if isinstance(exc, BridgeError) else DatabaseError(one_line(exc))
            self._close()

    def _pump(self) -> None:
        self.pump_scheduled = False
        self._guarded(self._publish_available)

    def _publish_available(self) -> None:
        if self.channel is None or not self.channel.is_open or self.closing:
            return
        self._mark_confirmed()
        while self._publish_next():
            self._mark_confirmed()
        if not self.more and not self.waiting and self._room() > 0:
            self._wait()

    def _wait(self) -> None:
        """The outbox is read to its end: wait for a capture's notification, holding the
        wake-up lock; or, while a capturing transaction is open (its commit will not
        notify), read again in BUSY_POLL. (_wakeup.sql.j2) A dialect without notifications
        reads again in its `idle_poll`."""
        if not self.notified:
            if not self.poll_scheduled and self.conn is not None:
                self.poll_scheduled = True
                self.conn.ioloop.call_later(self.o.dialect.idle_poll, self._poll)
            return
        if not self.db.execute(self.sql["dispatcher_wait"]).fetchone()[0]:
            if not self.poll_scheduled and self.conn is not None:
                self.poll_scheduled = True
                self.conn.ioloop.call_later(BUSY_POLL, self._poll)
            return
        self.waiting = True
        # every transaction that captured before the lock was taken has committed, but
        # may have done so after the last read: read once more (rows found release the
        # lock, and are followed by another read)
        self._publish_next()
        if self.read_any:
            self._wake()

    def _poll(self) -> None:
        self.poll_scheduled = False
        self._wake()

    def _tick(self) -> None:
        assert self.conn is not None
        self._guarded(self._timers)
        if not self.conn.is_closed:
            self.conn.ioloop.call_later(TICK, self._tick)

    def _timers(self) -> None:
        now = time.monotonic()
        if self.o.stop.is_set() and not self.closing:
            self.closing = True
            self.close_deadline = now + 10.0
        if self.channel is None or not self.channel.is_open:
            if self.closing:
                self._close()
            return
        if self.closing:
            self._mark_confirmed()
            if not self.in_flight or now > self.close_deadline:
                self._save_counts()
                self._close()
            return
        if self.in_flight:
            oldest = next(iter(self.in_flight.values())).at
            if now - oldest > self.cfg.republish_after:
                raise BrokerError(
                    f"no publisher confirm for {now - oldest:.0f}s (quorum lost?); reconnecting"
                )
        if now - self.last_poll >= self.cfg.poll_interval:
            self.last_poll = now  # the safety net, in case a notification was missed
            self._wake()
        if now - self.last_sweep >= min(self.cfg.poll_interval, self.cfg.republish_after):
            self.last_sweep = now
            self._sweep()
        if now - self.last_count >= COUNTS_EVERY:
            self.last_count = now
            self._save_counts()

    def _save_counts(self) -> None:
        if self.counts:
            counts, self.counts = self.counts, Counter()
            self.db.execute(
                self.sql["meta_add"], {"key": "dispatcher", "counts": json.dumps(counts)}
            )

    # -- publishing --------------------------------------------------------------------
    def _room(self) -> int:
        """Rows that may be read now: max_in_flight counts rows, not messages."""
        return min(self.cfg.batch_size, self.cfg.max_in_flight - self.rows_in_flight)

    def _publish_next(self) -> bool:
        """Publish the next rows in seq order; True if there may be more right away."""
        room = self._room()
        if room <= 0:
            return False
        now = time.monotonic()
        if self.gaps and now - next(iter(self.gaps.values())) > GAP_TTL:
            self.gaps = {s: at for s, at in self.gaps.items() if now - at <= GAP_TTL}
        rows = self.db.execute(
            self.sql["outbox_fetch"],
            {"after": self.cursor, "gaps": list(self.gaps), "limit": room},
        ).fetchall()
        self.read_any = bool(rows)
        if rows and self.waiting:  # busy again: the captures need not notify any more
            self.db.execute(self.sql["dispatcher_woken"])
            self.waiting = False
        for row in rows:
            seq = row[0]
            if seq > self.cursor:
                low = max(self.cursor, self.base)
                if seq - low - 1 <= MAX_GAPS - len(self.gaps):
                    self.gaps.update((s, now) for s in range(low + 1, seq))
                self.cursor = seq
        self._publish(rows)
        self.more = len(rows) == room
        return self.more and self._room() > 0

    def _sweep(self) -> None:
        room = self._room()
        if room <= 0 or self.cursor == 0:
            return
        # confirmed rows are no longer in flight but not yet marked: mark them first, or
        # the sweep would take them for stragglers and publish them again
        self._mark_confirmed()
        now = time.monotonic()
        self.unmarked = {
            s: at for s, at in self.unmarked.items() if now - at < self.cfg.republish_after
        }
        passed = self.o.progress.upto() if self.o.progress is not None else None
        rows = self.db.execute(
            self.sql["outbox_fetch_stragglers"],
            {
                "upto": self.cursor,
                "in_flight": [s for sent in self.in_flight.values() for s in sent.seqs]
                + list(self.unmarked),
                "passed": passed,
                "limit": room,
            },
        ).fetchall()
        again = sum(1 for row in rows if row[-1])
        if again:
            log.warning(
                "site=%s dispatcher publishing again %d row(s) the own queue lost: its "
                "consumer took every message confirmed after them, their echo never came",
                self.cfg.site,
                again,
            )
            self.o.stats.add("republished", again)
            self.counts["republished"] += again
        if len(rows) > again:
            log.info(
                "site=%s dispatcher publishing %d row(s) left behind (committed late, or "
                "not confirmed)",
                self.cfg.site,
                len(rows) - again,
            )
        self._publish([row[:-1] for row in rows])

    def _publish(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Publish rows read in seq order: consecutive rows of one transaction together,
        up to message_events / message_bytes a message (bridge/wire.py)."""
        for row in rows:
            seq, origin = row[0], row[3]
            self.gaps.pop(seq, None)
            if origin != self.cfg.site:
                raise BridgeError(
                    f"outbox row {seq} has origin {origin!r} but this is site {self.cfg.site}: "
                    "the database_url points at another site's database"
                )
        items = [(row, _body(row)) for row in rows]
        for group in wire.group(
            items,
            lambda item: item[0][6] if len(item[0]) > 6 else None,
            lambda item: len(item[1]),
            self.cfg.message_events,
            self.cfg.message_bytes,
        ):
            batch = [row for row, _ in group]
            body, props = _message(batch, [b for _, b in group], self.o.endpoints.user)
            self.channel.basic_publish(EVENTS_EXCHANGE, "", body, props, mandatory=True)
            self.counts["sent"] += len(batch)
            self.counts["messages"] += 1
            self.next_tag += 1
            seqs = tuple(row[0] for row in batch)
            self.in_flight[self.next_tag] = _Sent(seqs, batch[0][1], time.monotonic())
            self.o.stats.sent(str(props.message_id))  # its echo's round trip (metrics)
            self.rows_in_flight += len(seqs)
            failpoints.hit("dispatch.published")

    def _on_return(self, _ch: Any, _method: Any, props: Any, body: bytes) -> None:
        log.error(
            "site=%s %s unroutable: no queue is bound to %s; run bridge topology apply",
            self.cfg.site,
            wire.log_context(body, props.message_id),
            EVENTS_EXCHANGE,
        )
        self.returned.update(
            seq
            for sent in self.in_flight.values()
            if sent.event_id == props.message_id
            for seq in sent.seqs
        )

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag = method.delivery_tag
        tags = [t for t in self.in_flight if t <= tag] if method.multiple else [tag]
        acked = isinstance(method, pika.spec.Basic.Ack)
        for t in tags:
            sent = self.in_flight.pop(t, None)
            if sent is None:
                continue
            self.rows_in_flight -= len(sent.seqs)
            for seq in sent.seqs:
                if acked and seq not in self.returned:
                    self.confirmed.append(seq)
                else:  # left unpublished: the next sweep publishes it again
                    self.returned.discard(seq)
                    self.o.stats.add("nacked")
        if self.confirmed:
            failpoints.hit("dispatch.confirmed")
        if self.more or self.confirmed:
            self._wake()

    def _mark_confirmed(self) -> None:
        """Mark the confirmed rows (drop those whose echo came first); a row the consumer
        holds locked is tried again at the next call, until republish_after."""
        if not self.confirmed and not self.unmarked:
            return
        fresh, self.confirmed = self.confirmed, []
        seqs = fresh + [s for s in self.unmarked if s not in fresh]
        done = {r[0] for r in self.db.execute(self.sql["outbox_mark_published"], {"seqs": seqs})}
        now = time.monotonic()
        for s in seqs:
            if s in done:
                self.unmarked.pop(s, None)
            else:
                self.unmarked.setdefault(s, now)
        failpoints.hit("dispatch.marked")
        self.o.stats.add("published", len(fresh))
        self.counts["confirmed"] += len(fresh)
