"""`bridge replay`: send archived events again to one site.

Run at the archive site (its database holds `bridge_archive`; its broker user is the one
every consumer trusts to relay events of any origin). The events go, in the order they
were made, through the `bridge.replay` direct exchange to the target's queue only, never
the fanout: the other sites see nothing. The target applies each at most once (its inbox
makes an event it already has a duplicate) and an older change loses to a newer row
version as always, so replaying more than was lost is harmless.

One limit, kept by the target: an event older than what cleanup purged there (its inbox
entries and tombstones; bridge/cleanup.py records when) is skipped, since neither could
stop it any more (an old insert of a row deleted since would bring it back).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions

from bridge import codec, install, wire
from bridge import event as events
from bridge.broker import (
    EVENTS_HEADER,
    REPLAY_EXCHANGE,
    REPLAY_HEADER,
    Endpoints,
    describe,
    disconnect,
)
from bridge.broker import properties as event_properties
from bridge.config import Config
from bridge.dialects import for_url
from bridge.dialects.base import literal
from bridge.errors import BrokerError, ConfigError, EventError
from bridge.event import OPS, Event
from bridge.meter import Meter

log = logging.getLogger(__name__)

READ_BATCH = 2000  # archived events read at a time


@dataclass(frozen=True)
class Selection:
    """Which archived events go to `target`."""

    target: str
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    origins: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    # the target's own events come back to it as echoes, which change nothing there
    include_own: bool = False


@dataclass
class Report:
    events: int = 0
    messages: int = 0
    per_origin: Counter[str] = field(default_factory=Counter)


_AGO = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.ASCII)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """`2026-11-27T10:00:00Z`, `2026-11-27` (UTC when no zone is given), or a time ago:
    `90m`, `6h`, `3d`. ConfigError saying what is accepted otherwise."""
    match = _AGO.match(text)
    if match:
        delta = dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or dt.datetime.now(dt.UTC)) - delta
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{text!r} is not a time: give an ISO-8601 time (2026-11-27T10:00:00Z, "
            "2026-11-27; UTC when no zone is given) or a time ago (90m, 6h, 3d)"
        ) from None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def check(config: Config, selection: Selection) -> None:
    """ConfigError unless this site can replay this selection."""
    if not config.is_archive:
        raise ConfigError(
            f"site {config.site} is not the archive site ({config.archive_site}): run bridge "
            "replay with the archive site's configuration (its database holds the archive "
            "and only its broker user may replay)"
        )
    unknown = [s for s in (selection.target, *selection.origins) if s not in config.sites]
    if unknown:
        raise ConfigError(f"unknown site(s) {', '.join(unknown)}; sites are {list(config.sites)}")
    tables = [t for t in selection.tables if config.table(t) is None]
    if tables:
        raise ConfigError(
            f"table(s) {', '.join(tables)} not synced; synced tables are "
            f"{[t.name for t in config.tables]}"
        )
    if selection.since and selection.until and selection.since >= selection.until:
        raise ConfigError("--since must be before --until")


def _render(config: Config, dialect: Any, selection: Selection, count: bool) -> str:
    # the synced tables unless some are named: another table's events would be refused
    tables = selection.tables or tuple(t.name for t in config.tables)
    return str(
        dialect.render(
            "archive_replay",
            count=count,
            since=selection.since is not None,
            until=selection.until is not None,
            origins=[literal(o) for o in selection.origins],
            exclude=None if selection.include_own else literal(selection.target),
            types=[literal(f"{t}.{op}") for t in tables for op in OPS],
        )
    )


def _binds(selection: Selection) -> dict[str, Any]:
    binds: dict[str, Any] = {}
    if selection.since is not None:
        binds["since"] = selection.since
    if selection.until is not None:
        binds["until"] = selection.until
    return binds


def count(config: Config, selection: Selection) -> dict[tuple[str, str], int]:
    """How many archived events the selection holds, per (origin, type)."""
    check(config, selection)
    dialect = for_url(config.database_url)
    conn = dialect.connect(config.database_url)
    try:
        install.require_initialised(dialect, conn, config.site)
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(_render(config, dialect, selection, count=True), _binds(selection))
            return {(origin, type_): int(n) for origin, type_, n in cur.fetchall()}
    finally:
        conn.close()


def archived_event(value: Any) -> Event:
    """An event as `bridge_archive` holds it (JSON text, or a LOB: Oracle). Raises
    EventError or ValueError if it is not one."""
    if hasattr(value, "read"):
        value = value.read()
    if isinstance(value, bytes):
        value = value.decode()
    return events.from_dict(codec.loads(value if isinstance(value, str) else codec.dumps(value)))


def archived(config: Config, selection: Selection) -> Iterator[Event]:
    """The selected archived events, oldest first, read in one transaction."""
    dialect = for_url(config.database_url)
    conn = dialect.connect(config.database_url)
    try:
        with conn.transaction(), conn.cursor(name="bridge_replay") as cur:
            cur.execute(_render(config, dialect, selection, count=False), _binds(selection))
            while rows := cur.fetchmany(READ_BATCH):
                for event_id, text in rows:
                    try:
                        yield archived_event(text)
                    except (EventError, ValueError) as exc:
                        log.warning(
                            "site=%s entry=%s archived entry skipped: not a valid event: %s",
                            config.site,
                            event_id,
                            exc,
                        )
    finally:
        conn.close()


class Sender:
    """Publishes events to one site's queue through bridge.replay, with publisher confirms:
    `send` returns once RabbitMQ holds the message in the target's queue."""

    def __init__(self, config: Config, target: str, kind: str) -> None:
        self.config, self.target, self.kind = config, target, kind
        self.endpoints = Endpoints.of(config)
        self.conn: Any = None
        self.channel: Any = None

    def __enter__(self) -> Sender:
        try:
            self.conn = self.endpoints.blocking()
            self.channel = self.conn.channel()
            self.channel.confirm_delivery()
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise BrokerError(f"cannot open a channel to RabbitMQ: {describe(exc)}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        disconnect(self.conn)

    def send(self, batch: Sequence[Event]) -> None:
        """One message carrying these events (all of one origin)."""
        first = batch[0]
        props = event_properties(
            first.id, first.type, first.timestamp, first.origin, self.endpoints.user
        )
        assert props.headers is not None
        props.headers[REPLAY_HEADER] = self.kind
        if len(batch) > 1:
            props.type = wire.BATCH_TYPE
            props.headers[EVENTS_HEADER] = len(batch)
        try:
            self.channel.basic_publish(
                REPLAY_EXCHANGE, self.target, wire.encode_events(batch), props, mandatory=True
            )
        except pika.exceptions.UnroutableError:
            raise BrokerError(
                f"no queue takes {REPLAY_EXCHANGE} messages for {self.target}: run bridge "
                "topology apply (with an administrator's URL) to bind each site's queue"
            ) from None
        except pika.exceptions.NackError:
            raise BrokerError(f"RabbitMQ refused a {self.kind} message for {self.target}") from None
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 403:
                raise BrokerError(
                    f"broker user {self.endpoints.user!r} may not publish to {REPLAY_EXCHANGE} "
                    f"({exc.reply_text}): run {self.kind} with the archive site's "
                    "configuration (scripts/cluster add-site-user SITE PASSWORD --archive "
                    "grants it)"
                ) from None
            if exc.reply_code == 404:
                raise BrokerError(
                    f"exchange {REPLAY_EXCHANGE} does not exist: run bridge topology apply "
                    "with an administrator's URL"
                ) from None
            raise BrokerError(f"{self.kind} failed: {describe(exc)}") from None


def send_all(
    sender: Sender, config: Config, stream: Iterator[Event], meter: Meter | None
) -> Report:
    """Send events in messages of consecutive events of one origin (message_events,
    message_bytes per message)."""
    report = Report()
    items = ((e, e.encode()) for e in stream)
    for group in wire.group(
        items,
        lambda item: item[0].origin,
        lambda item: len(item[1]),
        config.message_events,
        config.message_bytes,
    ):
        batch = [e for e, _ in group]
        sender.send(batch)
        report.events += len(batch)
        report.messages += 1
        report.per_origin[batch[0].origin] += len(batch)
        if meter is not None:
            meter.advance(len(batch))
    return report


def replay(config: Config, selection: Selection, progress: bool = True) -> Report:
    """Send the selected archived events to the target's queue, oldest first."""
    total = sum(count(config, selection).values())
    log.info(
        "site=%s replay to %s: %d archived event(s) selected", config.site, selection.target, total
    )
    meter = Meter(f"replay to {selection.target}", total, unit="events") if progress else None
    with Sender(config, selection.target, "replay") as sender:
        report = send_all(sender, config, archived(config, selection), meter)
    if meter is not None:
        meter.finish()
    log.info(
        "site=%s replay to %s: %d event(s) sent in %d message(s)",
        config.site,
        selection.target,
        report.events,
        report.messages,
    )
    return report
