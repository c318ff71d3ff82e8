"""Is this site healthy? The checks behind `bridge status`'s exit status: the outbox's
oldest unpublished row younger than a threshold, the broker reachable with the site's own
user and its queue there, every capture trigger up to date, no dead letter waiting. Each
reason for "unhealthy" says what to do.

The broker is probed with passive declares only (they create nothing and read no message),
which RabbitMQ allows a user without any permission on the queue: a site's least-privilege
user (scripts/cluster add-site-user) can count its own queue and dead-letter queues."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions

from bridge import install
from bridge import status as status_mod
from bridge.broker import Endpoints, describe, disconnect
from bridge.config import Config
from bridge.dlq import dead_letter_queue
from bridge.errors import BrokerError

BROKER_TIMEOUT = 5.0  # seconds to connect and log in before the broker counts as unreachable


@dataclass(frozen=True)
class BrokerState:
    """What the site's own broker user sees: its queue's and dead-letter queues' message
    counts (None where unknown), or why it could not look."""

    reachable: bool
    queue: str
    queue_messages: int | None = None
    dead_letter_queues: dict[str, int | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # each a reason, with what to do

    @property
    def dead_letters(self) -> int | None:
        """Messages in the dead-letter queues that could be counted; None if none could."""
        known = [n for n in self.dead_letter_queues.values() if n is not None]
        return sum(known) if known else None


@dataclass(frozen=True)
class Health:
    """The verdict (`healthy` when no reason), its reasons, and what each check saw."""

    reasons: list[str]
    max_backlog_age: float
    oldest_unpublished: dt.timedelta | None
    drift: dict[str, str]  # table -> what is wrong with its capture trigger
    broker: BrokerState

    @property
    def healthy(self) -> bool:
        return not self.reasons


def dead_letter_queues(config: Config) -> list[str]:
    """The dead-letter queues of this site: its own, and at the archive site the archive's."""
    queues = [dead_letter_queue(config)]
    if config.is_archive:
        queues.append(dead_letter_queue(config, archive=True))
    return queues


def reasons(
    config: Config,
    oldest_unpublished: dt.timedelta | None,
    max_backlog_age: float,
    drift: dict[str, str],
    broker: BrokerState,
) -> list[str]:
    """Why this site is not healthy, each with what to do; [] when it is."""
    found: list[str] = []
    if oldest_unpublished is not None and oldest_unpublished.total_seconds() > max_backlog_age:
        found.append(
            f"backlog: the oldest unpublished outbox row is "
            f"{oldest_unpublished.total_seconds():.1f}s old (more than {max_backlog_age:g}s): "
            "is `bridge run` running at this site, and can it reach the broker? (its log)"
        )
    found += broker.problems
    for table, problem in sorted(drift.items()):
        found.append(f"table {table}: {problem}")
    for queue, count in broker.dead_letter_queues.items():
        if count:
            archive = "" if queue == dead_letter_queue(config) else " --archive"
            found.append(
                f"{count} dead letter(s) waiting in {queue}: see them with `bridge dlq"
                f"{archive} list`, then `bridge dlq{archive} retry` or `drop` them"
            )
    return found


def probe_broker(config: Config, timeout: float = BROKER_TIMEOUT) -> BrokerState:
    """Connect with the site's own amqp_url and passive-declare its queue and dead-letter
    queues for their message counts."""
    queues = [config.queue, *dead_letter_queues(config)]
    try:
        conn = Endpoints.of(config, timeout=timeout).blocking()
    except BrokerError as exc:  # the addresses tried, without password (bridge.redaction.redact)
        return _unreachable(config, f"broker unreachable: {exc}")
    counts: dict[str, int | None] = {}
    problems: list[str] = []
    try:
        for queue in queues:
            counts[queue] = _count(conn, queue, problems.append)
    except (pika.exceptions.AMQPError, OSError) as exc:
        return _unreachable(config, f"broker connection lost: {describe(exc)}")
    finally:
        disconnect(conn)
    return BrokerState(True, config.queue, counts.pop(config.queue), counts, problems)


def _unreachable(config: Config, problem: str) -> BrokerState:
    unknown: dict[str, int | None] = dict.fromkeys(dead_letter_queues(config))
    return BrokerState(False, config.queue, None, unknown, [problem])


def _count(conn: pika.BlockingConnection, queue: str, problem: Callable[[str], None]) -> int | None:
    """The ready messages of `queue`; None (and a problem) if it cannot be seen. A refused
    declare closes the channel: each queue gets its own."""
    channel = conn.channel()
    try:
        count: int = channel.queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            problem(
                f"queue {queue} does not exist on the broker: run `bridge topology apply` "
                "with an administrator's amqp_url (docs/operations.md)"
            )
        else:
            problem(f"cannot see queue {queue}: {describe(exc)}")
        return None
    if channel.is_open:
        channel.close()
    return count


def assess(
    config: Config,
    dialect: Any,
    conn: Any,
    max_backlog_age: float | None = None,
    state: status_mod.SiteStatus | None = None,
    timeout: float = BROKER_TIMEOUT,
) -> Health:
    """The site's health. `max_backlog_age` defaults to `status_max_backlog_age`; `state`
    is the SiteStatus already read, if any."""
    limit = config.status_max_backlog_age if max_backlog_age is None else max_backlog_age
    state = state if state is not None else status_mod.read(dialect, conn)
    drift = install.drift(dialect, conn, [t.name for t in config.tables])
    broker = probe_broker(config, timeout)
    found = reasons(config, state.oldest_unpublished, limit, drift, broker)
    return Health(found, limit, state.oldest_unpublished, drift, broker)
