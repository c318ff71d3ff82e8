"""The site's dead-letter queue `SITE_<SITE>.dlq`: list, retry and drop its messages.

Messages arrive there two ways: the consumer publishes a message it cannot apply, with the
reason in `x-bridge-reason`; RabbitMQ moves a message that was delivered past the queue's
`x-delivery-limit` without an acknowledgement, adding `x-death` headers.

Reading never loses nor reorders messages: every message of the queue, up to an end
marker this reader adds, is taken with manual acknowledgement; the chosen ones are
acknowledged (removed) and the rest are given back (nack with requeue, then the channel is
closed), which RabbitMQ does in their order. On RabbitMQ 3.10 each give-back counts as a
delivery in the message's `x-delivery-count`; the dead-letter queue has no delivery limit,
so nothing is lost by it. Run one `bridge dlq` command at a time per site: two readers
share the messages between them, and each sees only its part.

Retry applies a message at this site through the consumer's own validation and `Applier`,
so an event already applied is a no-op (bridge_inbox). It trusts the event's origin only as
far as RabbitMQ vouched for the publisher:
- a message dead-lettered by this site's consumer is published with this site's own broker
  user as `user_id` (RabbitMQ checks it), and carries the original publisher's validated
  user in `x-bridge-user-id`: that header is trusted only on such a message;
- a message RabbitMQ dead-lettered keeps its original `user_id`, which RabbitMQ checked when
  it was first published.
Any other user can publish to the dead-letter exchange, but not as this site's user: its
messages are judged by their own `user_id`, like any event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pika
import pika.exceptions

from bridge import wire
from bridge.apply import Applier
from bridge.archive import Archiver
from bridge.broker import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTERED_AT_HEADER,
    REASON_HEADER,
    USER_HEADER,
    Endpoints,
    dead_letter_properties,
    describe,
    disconnect,
    one_event_properties,
)
from bridge.config import Config
from bridge.consumer import Handler, validate
from bridge.decision import REJECTED
from bridge.dialects import for_url
from bridge.errors import BrokerError, ConfigError, DatabaseError, EventError
from bridge.event import Event

log = logging.getLogger(__name__)

FAILED = "failed"  # a retried message that still cannot be applied: back in the queue
MARKER_HEADER = "x-bridge-dlq-reader"  # the end marker of a reader (see _Held)
READ_TIMEOUT = 60.0  # seconds to read to the end marker
# a marker older than this was left by a reader that did not finish (it gives up sooner)
STALE_MARKER_SECONDS = 2 * READ_TIMEOUT


def source_queue(config: Config, archive: bool = False) -> str:
    """The queue whose dead letters these are: the site's own, or (`archive`, at the
    archive site) the archive queue SITE_<ARCHIVE>_HISTO."""
    if archive and not config.is_archive:
        raise ConfigError(
            f"site {config.site} is not the archive site ({config.archive_site}): run "
            "bridge dlq --archive with the archive site's configuration"
        )
    return config.archive_queue if archive else config.queue


def dead_letter_queue(config: Config, archive: bool = False) -> str:
    return f"{source_queue(config, archive)}.dlq"


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter queue, as `bridge dlq list` shows it."""

    id: str  # the event id (message_id), or sha256:<digest> of a message that has none
    type: str | None
    origin: str | None  # as the message says: trusted only if it matches `publisher`
    publisher: str | None  # the broker user RabbitMQ validated, None if unknown
    reason: str
    dead_lettered_at: dt.datetime | None
    timestamp: dt.datetime | None  # the event's own timestamp (AMQP property)
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "origin": self.origin,
            "publisher": self.publisher,
            "reason": self.reason,
            "dead_lettered_at": _iso(self.dead_lettered_at),
            "timestamp": _iso(self.timestamp),
            "size": self.size,
        }


@dataclass(frozen=True)
class RetryResult:
    id: str
    status: str  # applied, duplicate, superseded, conflict, echo (removed), or failed
    detail: str = ""

    @property
    def removed(self) -> bool:
        return self.status != FAILED


@dataclass
class RetryReport:
    results: list[RetryResult] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # requested ids not in the queue

    @property
    def failed(self) -> list[RetryResult]:
        return [r for r in self.results if not r.removed]


@dataclass
class DropReport:
    dropped: list[str] = field(default_factory=list)  # one id per message removed
    unknown: list[str] = field(default_factory=list)


def list_dead_letters(
    config: Config, endpoints: Endpoints | None = None, archive: bool = False
) -> list[DeadLetter]:
    """Every message of the site's dead-letter queue (the archive's with `archive`), in
    order, leaving the queue as it was."""
    with _Held(endpoints or _endpoints(config), dead_letter_queue(config, archive)) as held:
        return [_describe(m, held.user) for m in held.messages]


def retry(
    config: Config,
    ids: Sequence[str] | None,
    endpoints: Endpoints | None = None,
    dialect: Any = None,
    archive: bool = False,
) -> RetryReport:
    """Apply dead-lettered messages (those with these ids, or all if `ids` is None) at this
    site (with `archive`, store them in the archive). Each one that applies (or was already
    applied, or lost a conflict) is removed; each one that fails again goes back to the
    queue with the new reason."""
    queue = dead_letter_queue(config, archive)
    report = RetryReport()
    with _Held(endpoints or _endpoints(config), queue) as held:
        chosen, report.unknown = _select(held.messages, ids)
        if not chosen:
            return report
        dialect = dialect or for_url(config.database_url)
        handler: Handler = Archiver(config, dialect) if archive else Applier(config, dialect)
        source = source_queue(config, archive)
        try:
            for start in range(0, len(chosen), config.batch_size):
                chunk = chosen[start : start + config.batch_size]
                report.results += _retry_chunk(config, held, handler, chunk, source)
        except DatabaseError as exc:
            raise DatabaseError(
                f"{exc}; {len(report.results)} message(s) were retried before that, the "
                f"others are still in {queue}: run bridge dlq retry again once the database "
                "is back"
            ) from exc
        finally:
            handler.close()
    return report


def drop(
    config: Config,
    ids: Sequence[str] | None,
    endpoints: Endpoints | None = None,
    archive: bool = False,
) -> DropReport:
    """Delete dead-lettered messages (those with these ids, or all if `ids` is None)."""
    queue = dead_letter_queue(config, archive)
    report = DropReport()
    with _Held(endpoints or _endpoints(config), queue) as held:
        chosen, report.unknown = _select(held.messages, ids)
        for m in chosen:
            held.ack(m)
            log.info(
                "site=%s %s dropped from %s (reason was: %s)",
                config.site,
                wire.log_context(m.body, m.key),
                queue,
                _reason(m.props, held.user),
            )
            report.dropped.append(m.key)
    return report


@dataclass
class _Message:
    tag: int
    props: pika.BasicProperties
    body: bytes

    @property
    def key(self) -> str:
        if self.props.message_id:
            return str(self.props.message_id)
        return "sha256:" + hashlib.sha256(self.body).hexdigest()[:16]


class _Held:
    """Every message of a queue, held unacknowledged until exit, when what was not
    acknowledged is given back, in order.

    The end of the queue is found with a marker: an empty message this reader publishes
    (as the site's own broker user) after it started consuming. Everything before the
    marker was in the queue when the reading started. (The message count of
    queue.declare is no guide: on a quorum queue it can lag behind the queue.) A marker
    left by a reader that did not finish is removed by a later reader once it is stale;
    a fresh one may belong to a concurrent reader and is left alone."""

    def __init__(self, endpoints: Endpoints, queue: str) -> None:
        self.endpoints = endpoints
        self.user = endpoints.user
        self.queue = queue
        self.messages: list[_Message] = []
        self.marker = str(uuid.uuid4())
        self.consumer_tag = ""
        self.done = False

    def __enter__(self) -> _Held:
        self.conn = self.endpoints.blocking()
        try:
            self.channel = self.conn.channel()
            self.publisher = self.conn.channel()
            self.publisher.confirm_delivery()
            self._read()
        except pika.exceptions.AMQPError as exc:
            self._close()
            raise self._error(exc) from None
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._close()

    def _error(self, exc: pika.exceptions.AMQPError) -> BrokerError:
        if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
            if exc.reply_code == 404:
                return BrokerError(f"queue {self.queue} does not exist: run bridge topology apply")
            if exc.reply_code == 403:
                return BrokerError(
                    f"cannot read {self.queue} ({exc.reply_text}): check the broker user's "
                    "read permission (scripts/cluster add-site-user)"
                )
        return BrokerError(f"reading {self.queue}: {describe(exc)}")

    def _read(self) -> None:
        self.channel.basic_qos(prefetch_count=0)  # no limit: all of them at once
        self.consumer_tag = self.channel.basic_consume(self.queue, self._on_message)
        self.publish(
            b"",
            pika.BasicProperties(
                message_id=f"bridge-dlq-reader:{self.marker}",
                timestamp=int(time.time()),
                delivery_mode=pika.DeliveryMode.Persistent,
                user_id=self.user,
                headers={MARKER_HEADER: self.marker},
            ),
        )
        deadline = time.monotonic() + READ_TIMEOUT
        while not self.done:
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"could not read to the end of {self.queue} in {READ_TIMEOUT:.0f} s: "
                    "another `bridge dlq` command may be holding its messages; try again "
                    "when it is done"
                )
            self.conn.process_data_events(time_limit=0.1)
        self.channel.basic_cancel(self.consumer_tag)  # nothing after the marker is read
        self.consumer_tag = ""

    def _on_message(self, _ch: Any, method: Any, props: Any, body: bytes) -> None:
        headers = props.headers or {}
        if self.done:
            return  # after the marker: not read, given back at exit
        if props.user_id == self.user and MARKER_HEADER in headers:
            if _text(headers[MARKER_HEADER]) == self.marker:
                self.channel.basic_ack(delivery_tag=method.delivery_tag)
                self.done = True
            elif not props.timestamp or time.time() - props.timestamp > STALE_MARKER_SECONDS:
                log.info("%s: removed the marker of a reader that did not finish", self.queue)
                self.channel.basic_ack(delivery_tag=method.delivery_tag)
            else:  # given back at exit, for its reader
                log.warning(
                    "%s: another `bridge dlq` command seems to be reading it now; messages "
                    "it holds are not seen here: run one at a time",
                    self.queue,
                )
            return
        self.messages.append(_Message(method.delivery_tag, props, body))

    def ack(self, m: _Message) -> None:
        self.channel.basic_ack(delivery_tag=m.tag)

    def publish(self, body: bytes, props: pika.BasicProperties) -> None:
        try:
            self.publisher.basic_publish(
                DEAD_LETTER_EXCHANGE, self.queue, body, props, mandatory=True
            )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
            raise BrokerError(
                f"RabbitMQ did not take a message into {self.queue}: run bridge topology "
                f"apply and check the broker user's write permission on {DEAD_LETTER_EXCHANGE}"
            ) from None

    def _close(self) -> None:
        """Give back what was not acknowledged, then close. Returning them explicitly on an
        open channel, then closing it, puts them back before the next reader can look."""
        try:
            channel = getattr(self, "channel", None)
            if channel is not None and channel.is_open:
                if self.consumer_tag:
                    channel.basic_cancel(self.consumer_tag)
                channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
                channel.close()
        except pika.exceptions.AMQPError:
            pass  # closing the connection gives them back too
        disconnect(self.conn)


def _retry_chunk(
    config: Config, held: _Held, handler: Handler, chunk: list[_Message], source: str
) -> list[RetryResult]:
    """Apply the events of these messages. A message of one event is removed if it applied
    and put back with the new reason if not; a batch (bridge/wire.py) is removed once its
    events are decided on, the events that failed again each put back in a message of its
    own. One result per event (per message for a message that is not valid)."""
    results: dict[int, list[RetryResult]] = {}
    valid: list[tuple[int, _Message, str | None, list[Event]]] = []
    for n, m in enumerate(chunk):
        publisher = verified_publisher(m.props, held.user)
        try:
            valid.append(
                (
                    n,
                    m,
                    publisher,
                    validate(
                        m.body, m.props.message_id, publisher, m.props.headers, config.archive_site
                    ),
                )
            )
        except EventError as exc:
            results[n] = [_back(config, held, m, publisher, str(exc), source)]
    every = [e for *_, carried in valid for e in carried]
    outcomes = iter(handler.apply_batch(every) if every else [])
    for n, m, publisher, carried in valid:
        results[n] = []
        for e in carried:
            outcome = next(outcomes)
            if outcome.status == REJECTED:
                if len(carried) == 1:
                    results[n].append(_back(config, held, m, publisher, outcome.reason, source))
                    continue
                alone = _Message(m.tag, one_event_properties(m.props, e.id, e.type), e.encode())
                held.publish(
                    alone.body,
                    dead_letter_properties(
                        alone.props, source, outcome.reason, publisher, held.user
                    ),
                )
                log.warning(
                    "site=%s event=%s table=%s of batch %s retry failed, back in %s: %s",
                    config.site,
                    e.id,
                    e.table,
                    m.key,
                    held.queue,
                    outcome.reason,
                )
                results[n].append(RetryResult(e.id, FAILED, outcome.reason))
                continue
            log.info(
                "site=%s event=%s table=%s retried from %s: %s %s",
                config.site,
                e.id,
                e.table,
                held.queue,
                outcome.status,
                outcome.reason,
            )
            results[n].append(RetryResult(e.id, outcome.status, outcome.reason))
        if not (len(carried) == 1 and results[n][0].status == FAILED):
            held.ack(m)
    return [r for n in range(len(chunk)) for r in results[n]]


def _back(
    config: Config, held: _Held, m: _Message, publisher: str | None, reason: str, source: str
) -> RetryResult:
    """Put a message that failed again back in the queue with the new reason."""
    props = dead_letter_properties(m.props, source, reason, publisher, held.user)
    held.publish(m.body, props)
    held.ack(m)
    log.warning(
        "site=%s %s retry failed, back in %s: %s",
        config.site,
        wire.log_context(m.body, m.key),
        held.queue,
        reason,
    )
    return RetryResult(m.key, FAILED, reason)


def verified_publisher(props: pika.BasicProperties, own_user: str) -> str | None:
    """The broker user RabbitMQ validated for a dead-lettered message's original publish,
    or None if no one vouched for it (see the module's docstring)."""
    headers = props.headers or {}
    if props.user_id == own_user and USER_HEADER in headers:
        return _text(headers[USER_HEADER]) or None
    return str(props.user_id) if props.user_id else None


def _select(
    messages: list[_Message], ids: Sequence[str] | None
) -> tuple[list[_Message], list[str]]:
    """The messages with these ids (all of them for None), and the ids none of them has."""
    if ids is None:
        return list(messages), []
    wanted = list(dict.fromkeys(i.strip() for i in ids))
    present = {m.key for m in messages}
    return [m for m in messages if m.key in wanted], [i for i in wanted if i not in present]


def _describe(m: _Message, own_user: str) -> DeadLetter:
    origin = _text((m.props.headers or {}).get("x-bridge-origin")) or None
    type_ = m.props.type
    try:
        raw = json.loads(m.body)
        if isinstance(raw, dict):
            origin = raw["origin"] if isinstance(raw.get("origin"), str) else origin
            type_ = type_ or (raw["type"] if isinstance(raw.get("type"), str) else None)
    except (UnicodeDecodeError, json.JSONDecodeError):
        pass
    return DeadLetter(
        id=m.key,
        type=type_,
        origin=origin,
        publisher=verified_publisher(m.props, own_user),
        reason=_reason(m.props, own_user),
        dead_lettered_at=_dead_lettered_at(m.props, own_user),
        timestamp=(
            dt.datetime.fromtimestamp(m.props.timestamp, dt.UTC) if m.props.timestamp else None
        ),
        size=len(m.body),
    )


def _reason(props: pika.BasicProperties, own_user: str) -> str:
    """Why the message is here: bridge's own reason (trusted only on a message this site
    published), else what RabbitMQ recorded in x-death (the latest entry comes first)."""
    headers = props.headers or {}
    if props.user_id == own_user and REASON_HEADER in headers:
        return _text(headers[REASON_HEADER])
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        death = deaths[0]
        why, queue = _text(death.get("reason")), _text(death.get("queue")) or "its queue"
        times = death.get("count")
        again = f" ({times} times)" if isinstance(times, int) and times > 1 else ""
        if why == "delivery_limit":
            return (
                f"delivery limit exceeded: {queue} delivered it more times than its "
                f"x-delivery-limit without an acknowledgement{again} (a consumer crashed, was "
                "killed or gave it back each time)"
            )
        if why == "rejected":
            return f"rejected by a consumer of {queue} without requeue{again}"
        if why == "expired":
            return f"expired in {queue} (message TTL){again}"
        if why == "maxlen":
            return f"dropped by {queue}: queue length limit reached{again}"
        return f"dead-lettered by RabbitMQ from {queue}: {why or 'no reason given'}{again}"
    return "unknown: no x-bridge-reason from this site nor x-death header"


def _dead_lettered_at(props: pika.BasicProperties, own_user: str) -> dt.datetime | None:
    headers = props.headers or {}
    if props.user_id == own_user and DEAD_LETTERED_AT_HEADER in headers:
        try:
            return dt.datetime.fromisoformat(_text(headers[DEAD_LETTERED_AT_HEADER]))
        except ValueError:
            return None
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        when = deaths[0].get("time")
        if isinstance(when, dt.datetime):
            return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return None


def _endpoints(config: Config) -> Endpoints:
    return Endpoints.of(config)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None
