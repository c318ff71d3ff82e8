"""`bridge bootstrap --from SITE`: a new, empty site joins a running federation.

1. The new site's queue must exist before anything is copied (`bridge topology apply`
   with the site in 'sites'): from then on every change any site publishes is kept in
   it. What was published before it existed reaches the new site only through the copy,
   so the copy must hold it: bootstrap waits until the source has applied everything its
   own queue held once the new queue existed (`wait_drained`): it puts a drain marker at
   the end of the source's queue (bridge/marker.py) and waits until the source records it.
   The queue hands messages to its consumer in order, and the consumer records a marker
   only after the batch holding it committed, so every message published before the new
   queue existed is then committed at the source (with no consumer and no message on the
   queue, nothing is in flight: no wait). The snapshot is taken after that, so it holds
   every change published before the new queue existed.
2. The synced tables are copied from the source in one snapshot (REPEATABLE READ, set for
   the source connection's session by bootstrap_begin), chunk
   by chunk in primary-key order, each chunk written here in one transaction marked as
   bridge's own (the capture does not take it) through the applier's own statements,
   every row stamped with the version it has at the source (its last applied change, or a
   newer local change still in the source's outbox); tombstones are copied too. A row the
   source has no version for (there before bridge captured its table) is stamped
   (1970-01-01T00:00:00Z, source): older than any change, so the first change of the row
   that arrives applies, as it would at the source. Each chunk's transaction also records
   how far the copy got (bridge_meta 'bootstrap').
3. Killed, bootstrap is run again and resumes after the last key recorded, from a newer
   snapshot. That is still right: every change published since the new queue existed is
   in the queue, and the row versions decide what it does to a row copied from either
   snapshot (an older or duplicate change loses to the stamped version; a newer one
   applies). Then `bridge run` here applies the queue through the normal path.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions

from bridge import codec, install, marker
from bridge.apply import Applier
from bridge.broker import Endpoints, disconnect
from bridge.config import Config, site_queue
from bridge.dialects import for_url
from bridge.dialects.base import Dialect, TableInfo
from bridge.errors import BrokerError, DatabaseError, RefusedError
from bridge.event import Event
from bridge.meter import Meter

log = logging.getLogger(__name__)

META_KEY = "bootstrap"
UNVERSIONED = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # the version of a row without one
# dialects with the templates bootstrap reads a source with (bootstrap_begin, _rows,
# _tombstones), and with those it writes a new site with (bootstrap_any, meta_put)
SOURCES = ("postgresql", "mariadb")
TARGETS = ("postgresql", "mariadb")
POLL = 0.2  # seconds between looks at the source's queue


@dataclass
class State:
    """How far a bootstrap got, as bridge_meta 'bootstrap' keeps it."""

    source: str
    done: list[str] = field(default_factory=list)  # tables copied whole
    table: str | None = None  # the table being copied
    after: dict[str, Any] | None = None  # its last key copied (the event key's form)
    copied: int = 0  # rows copied, every run
    finished: bool = False

    def to_json(self) -> str:
        return codec.dumps(self.__dict__)

    @classmethod
    def from_json(cls, value: Any) -> State:
        raw = codec.loads(value) if isinstance(value, str | bytes) else value
        return cls(**raw)


@dataclass
class Report:
    source: str
    resumed: bool = False
    rows: dict[str, int] = field(default_factory=dict)  # copied by this run, per table
    tombstones: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # copied whole by an earlier run
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _supported(dialect: Dialect, role: str, supported: tuple[str, ...]) -> None:
    if dialect.name not in supported:
        raise RefusedError(
            f"bridge bootstrap does not support {dialect.title} as the {role} site yet "
            f"(only {', '.join(supported)}: its templates for {dialect.title} have never "
            "run against a server)"
        )


def check_queue(config: Config) -> None:
    """RefusedError unless this site's queue exists (passive declare)."""
    conn = Endpoints.of(config).blocking()
    try:
        conn.channel().queue_declare(config.queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            raise RefusedError(
                f"queue {config.queue} does not exist yet: add {config.site} to 'sites' in "
                "every site's configuration and run `bridge topology apply --amqp-url "
                "<administrator URL>` first (a site's broker user may not declare queues), "
                "then run bridge bootstrap again"
            ) from None
        raise BrokerError(f"cannot look at queue {config.queue}: {exc}") from None
    finally:
        if conn.is_open:
            conn.close()


def wait_drained(
    config: Config,
    source: str,
    source_url: str,
    timeout: float,
    say: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Return once every message published to the source's queue before this call has
    been applied and committed there (see the module's docstring, 1.): a drain marker put
    at the end of that queue is recorded by the source. RefusedError after `timeout`."""
    queue = site_queue(source)
    conn = Endpoints.of(config).blocking()
    try:
        try:
            ok = conn.channel().queue_declare(queue, passive=True).method
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise BrokerError(f"cannot look at queue {queue}: {exc}") from None
    finally:
        disconnect(conn)
    if ok.message_count == 0 and ok.consumer_count == 0:
        return  # nothing waits, nothing is held by a consumer: nothing to wait for
    sent = marker.publish(config, queue)
    say(
        f"waiting for {source} to take a marker put behind the {ok.message_count} "
        f"message(s) of {queue}"
    )
    dialect = for_url(source_url)
    deadline = clock() + timeout
    src = dialect.connect(source_url)
    try:
        while marker.recorded(dialect, src) != sent:
            if clock() > deadline:
                raise RefusedError(
                    f"{source} had not applied what its queue {queue} held after {timeout:g}s: "
                    f"bootstrap copies {source} once it has applied what was published before "
                    f"{config.queue} existed; make sure `bridge run` runs at {source} (this "
                    "version or newer), or bootstrap from another site"
                )
            time.sleep(POLL)
    finally:
        src.close()


def _state(dialect: Dialect, conn: Any) -> State | None:
    with conn.cursor() as cur:
        value = install.meta_get(dialect, cur, META_KEY)
    return None if value is None else State.from_json(value)


def _put(dialect: Dialect, state: State) -> tuple[str, dict[str, Any]]:
    return dialect.render("meta_put"), {"key": META_KEY, "value": state.to_json()}


def _filled(dialect: Dialect, conn: Any, tables: list[str]) -> list[str]:
    return [
        t
        for t in tables
        if conn.execute(dialect.render("bootstrap_any", table=dialect.table_ref(t))).fetchone()[0]
    ]


def bootstrap(
    config: Config,
    source: str,
    source_url: str,
    chunk_rows: int = 5000,
    force: bool = False,
    drain_timeout: float = 600.0,
    say: Callable[[str], None] = lambda _: None,
    meter: Callable[[str, int], Meter] | None = None,
) -> Report:
    """Copy the synced tables of site `source` (at `source_url`) into this new site; see
    the module's docstring. `meter(label, total)` shows the progress of each table."""
    if source == config.site:
        raise RefusedError(f"--from {source} is this site: name another site to copy from")
    dialect = for_url(config.database_url)
    src_dialect = for_url(source_url)
    _supported(dialect, "new", TARGETS)
    _supported(src_dialect, "source", SOURCES)
    tables = [t.name for t in config.tables]
    started = time.monotonic()
    check_queue(config)
    applier = Applier(config, dialect)
    try:
        install.require_initialised(dialect, applier.conn, config.site)
        state = _state(dialect, applier.conn)
        report = Report(source)
        if state is not None and state.finished and not force:
            raise RefusedError(
                f"site {config.site} was bootstrapped from {state.source} already; "
                "`bridge bootstrap --force` copies again (rows here are overwritten)"
            )
        if state is not None and not state.finished and state.source != source and not force:
            raise RefusedError(
                f"an unfinished bootstrap from {state.source} is recorded here: finish it "
                f"with --from {state.source}, or start again with --force"
            )
        if state is None or state.finished or force:
            filled = _filled(dialect, applier.conn, tables)
            if filled and not force:
                raise RefusedError(
                    f"table(s) {', '.join(filled)} at {config.site} hold rows: bootstrap fills "
                    "an empty site; empty them, or give --force to overwrite rows of the "
                    "same key with the source's (rows the source lacks stay)"
                )
            say(f"waiting until {source} has applied what was published before {config.queue}")
            wait_drained(config, source, source_url, drain_timeout, say)
            # recorded only now: a run killed after this resumes without waiting again,
            # rightly (what this wait guarantees holds for every later snapshot)
            state = State(source)
            applier.conn.execute(*_put(dialect, state))
        else:
            report.resumed = True
            say(
                f"resuming the bootstrap from {source}: {state.copied:,} rows copied before"
                + (f", {state.table} after key {state.after}" if state.table else "")
            )
        _copy(applier, dialect, src_dialect, source_url, tables, state, report, chunk_rows, meter)
        state.finished, state.table, state.after = True, None, None
        applier.conn.execute(*_put(dialect, state))
    finally:
        applier.close()
    report.seconds = time.monotonic() - started
    log.info(
        "site=%s bootstrap from %s done: %d rows copied in %.1fs",
        config.site,
        source,
        report.total,
        report.seconds,
    )
    return report


def _copy(
    applier: Applier,
    dialect: Dialect,
    src_dialect: Dialect,
    source_url: str,
    tables: list[str],
    state: State,
    report: Report,
    chunk_rows: int,
    meter: Callable[[str, int], Meter] | None,
) -> None:
    """Copy every table not copied whole yet, in one snapshot of the source."""
    try:
        src = src_dialect.connect(source_url)
    except src_dialect.errors.any as exc:
        raise DatabaseError(f"cannot connect to the source site's database: {exc}") from None
    try:
        for statement in src_dialect.statements("bootstrap_begin"):
            src.execute(statement)  # session settings: the transaction below is a snapshot
        with src.transaction():
            for table in tables:
                if table in state.done:
                    report.skipped.append(table)
                    continue
                info = src_dialect.introspect(src, table)
                report.rows[table] = _copy_rows(
                    applier, dialect, src_dialect, src, info, state, chunk_rows, meter
                )
                report.tombstones[table] = _copy_tombstones(
                    applier, dialect, src_dialect, src, info, state
                )
                state.done.append(table)
                state.table, state.after = None, None
                applier.conn.execute(*_put(dialect, state))
    finally:
        src.close()


def _after_params(info: TableInfo, after: dict[str, Any] | None) -> dict[str, Any]:
    if after is None:
        return {}
    return {f"after_{c.param}": codec.to_text(after[c.name], c.kind) for c in info.pk}


def _copy_rows(
    applier: Applier,
    dialect: Dialect,
    src_dialect: Dialect,
    src: Any,
    info: TableInfo,
    state: State,
    chunk_rows: int,
    meter: Callable[[str, int], Meter] | None,
) -> int:
    table = info.table.name
    after = state.after if state.table == table else None
    state.table, state.after = table, after
    count = src_dialect.render(
        "bootstrap_rows", table=info.table, info=info, after=after is not None, count=True
    )
    total = src.execute(count, _after_params(info, after)).fetchone()
    shown = meter(table, int(total[0])) if meter else None
    json_text = [c.name for c in info.json_text]
    copied = 0
    statements = {
        resuming: src_dialect.render(
            "bootstrap_rows", table=info.table, info=info, after=resuming, count=False
        )
        for resuming in (False, True)
    }
    while True:
        statement = statements[state.after is not None]
        params = {**_after_params(info, state.after), "limit": chunk_rows}
        rows = src.execute(statement, params).fetchall()
        if not rows:
            break
        events = [
            Event(
                event_id or "",
                ts or UNVERSIONED,
                origin or state.source,
                f"{table}.insert",
                {
                    "table": table,
                    "op": "insert",
                    "key": codec.loads(key),
                    "row": codec.loads(row),
                    "json_text": json_text,
                },
            )
            for key, row, ts, origin, event_id in rows
        ]
        state.after = events[-1].key
        state.copied += len(events)
        applier.write_copied(events, _put(dialect, state))
        copied += len(events)
        if shown:
            shown.advance(len(events))
        log.debug("site=%s table=%s copied %d rows", applier.config.site, table, copied)
    if shown:
        shown.finish()
    return copied


def _copy_tombstones(
    applier: Applier,
    dialect: Dialect,
    src_dialect: Dialect,
    src: Any,
    info: TableInfo,
    state: State,
) -> int:
    """Copy the table's tombstones (all of them again after a resume: a version is only
    ever replaced by a newer one)."""
    table = info.table.name
    cur = src.execute(src_dialect.render("bootstrap_tombstones", table=info.table, info=info))
    copied = 0
    while rows := cur.fetchmany(5000):
        events = [
            Event(
                event_id or "",
                ts,
                origin,
                f"{table}.delete",
                {"table": table, "op": "delete", "key": codec.loads(key)},
            )
            for key, ts, origin, event_id in rows
        ]
        applier.write_copied(events, _put(dialect, state))
        copied += len(events)
    return copied


def describe(report: Report) -> list[str]:
    """The report as lines for a person."""
    lines = [
        f"{table}: {rows:,} rows, {report.tombstones.get(table, 0):,} tombstones copied"
        for table, rows in report.rows.items()
    ]
    lines += [f"{table}: copied whole by an earlier run" for table in report.skipped]
    verb = "resumed and finished" if report.resumed else "finished"
    lines.append(
        f"bootstrap from {report.source} {verb}: {report.total:,} rows in {report.seconds:.1f}s; "
        "now start `bridge run` here, then `bridge verify`"
    )
    return lines
