"""`bridge repair`: bring the rows `bridge verify` found different back to one state,
through the sites' queues, so that the normal apply path and its rules decide.

For each differing key, read at every site what a change of the row would be decided on
(the row, its version, a pending local change: `Applier.row_states`), then pick the row's
winning state:
- the newest version any site holds (last writer wins, as the sites themselves decide);
  its content is the archive's event of that version if the archive still has it, else
  the row as most of the sites holding that version have it (one of them may have been
  changed behind bridge's back: its version is right, its values are not);
- no site has a version (rows bridge never carried: loaded before it, or written behind
  its back everywhere): the state most sites hold, the archive site's on a tie, stamped
  now.
Each site whose state differs gets a repair event (a new id, the winning version's time
and origin, `"repair": true`) through bridge.replay: it is applied even where that version
is already known, and loses like any change to a newer version or a pending local change
(the row moved on meanwhile). A key with a local change still pending at some site is left
for the next run: it is in flux, not diverged.

Run at the archive site (its broker user relays events; its database holds the archive),
with every other site's database in `peers`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge import codec
from bridge.apply import Applier
from bridge.config import Config
from bridge.decision import RowState, Version
from bridge.dialects import for_url
from bridge.dialects.base import literal
from bridge.errors import ConfigError, EventError
from bridge.event import OPS, Event
from bridge.meter import Meter
from bridge.replay import Sender, archived_event, send_all
from bridge.verify import DEFAULT_CHUNK_ROWS, Comparison, KeyDiff, compare

log = logging.getLogger(__name__)

WAIT_POLL = 0.5  # seconds between looks at the targets' inboxes


@dataclass(frozen=True)
class Fix:
    """One repair event for one site."""

    site: str
    event: Event
    source: str  # where its content comes from: "archive", a site name, or "majority"


@dataclass
class Plan:
    fixes: list[Fix] = field(default_factory=list)
    busy: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)  # table, key, why

    def per_site(self) -> Counter[str]:
        return Counter(f.site for f in self.fixes)


def _canonical(row: Mapping[str, Any] | None) -> str:
    return "" if row is None else codec.dumps(dict(row), sort_keys=True)


def _same_key(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return set(a) == set(b) and all(str(a[k]) == str(b[k]) for k in a)


def _site_config(config: Config, site: str, url: str) -> Config:
    return dataclasses.replace(config, site=site, database_url=url)


class _Archive:
    """The archived event of a version, for a table's keys (the archive site's database)."""

    def __init__(self, config: Config) -> None:
        self.site = config.site
        self.dialect = for_url(config.database_url)
        self.conn = self.dialect.connect(config.database_url)

    def close(self) -> None:
        self.conn.close()

    def event_of(self, table: str, key: Mapping[str, Any], version: Version) -> Event | None:
        types = [literal(f"{table}.{op}") for op in OPS]
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                self.dialect.render("archive_version", types=types),
                {"ts": version[0], "origin": version[1]},
            )
            found = cur.fetchall()
        for event_id, text in found:
            try:
                e = archived_event(text)
            except (EventError, ValueError):
                log.warning(
                    "site=%s entry=%s archived entry skipped: not a valid event",
                    self.site,
                    event_id,
                )
                continue
            if _same_key(e.key, key):
                return e
        return None


def _winner(states: Mapping[str, RowState], archive_site: str) -> tuple[Version | None, list[str]]:
    """The winning version (None if no site has one) and the sites whose state is the
    winning content, by majority among the sites holding that version (all sites if
    none has one); the archive site, then site order, breaks a tie."""
    versions = [s.version for s in states.values() if s.version is not None]
    best = max(versions) if versions else None
    holders = [site for site, s in states.items() if s.version == best]
    tally = Counter(_canonical(states[site].local_row) for site in holders)
    top = max(tally.values())
    groups = [c for c, n in tally.items() if n == top]
    if len(groups) > 1:
        preferred = archive_site if archive_site in holders else holders[0]
        chosen = _canonical(states[preferred].local_row)
    else:
        chosen = groups[0]
    return best, [site for site in holders if _canonical(states[site].local_row) == chosen]


def plan(
    config: Config,
    urls: Mapping[str, str],
    differences: Mapping[str, Sequence[KeyDiff]],
    sites: Iterable[str] | None = None,
) -> Plan:
    """The repair events that bring every differing key to its winning state at `sites`
    (default: every site)."""
    wanted = set(sites) if sites is not None else set(urls)
    result = Plan()
    appliers = {
        site: Applier(_site_config(config, site, url), for_url(url)) for site, url in urls.items()
    }
    archive = _Archive(config)
    try:
        for table, diffs in differences.items():
            keys = [d.key for d in diffs]
            if not keys:
                continue
            per_site = {site: a.row_states(table, keys) for site, a in appliers.items()}
            for n, key in enumerate(keys):
                states = {site: per_site[site][n] for site in appliers}
                pending = [site for site, s in states.items() if s.pending_ts is not None]
                if pending:
                    result.busy.append(
                        (table, key, f"a local change is still on its way from {pending}")
                    )
                    continue
                result.fixes += _fixes(config, archive, table, key, states, wanted)
    finally:
        archive.close()
        for a in appliers.values():
            a.close()
    return result


def _fixes(
    config: Config,
    archive: _Archive,
    table: str,
    key: dict[str, Any],
    states: Mapping[str, RowState],
    wanted: set[str],
) -> list[Fix]:
    version, agreeing = _winner(states, config.archive_site)
    data: dict[str, Any]
    archived = archive.event_of(table, key, version) if version is not None else None
    if archived is not None:
        data, source = dict(archived.data), "archive"
        if data["op"] == "delete":
            data.pop("row", None)
    else:
        row = states[agreeing[0]].local_row
        source = agreeing[0] if version is not None else "majority"
        data = {"table": table, "op": "update" if row is not None else "delete", "key": key}
        if row is not None:
            data["row"] = row
    versioned = version is not None
    if version is None:
        version = (dt.datetime.now(dt.UTC), config.archive_site)
    winning = _canonical(data.get("row"))
    data["repair"] = True
    fixes = []
    for site, state in states.items():
        if site not in wanted:
            continue
        if _canonical(state.local_row) == winning and (state.version == version or not versioned):
            continue  # holds the winning state already
        event = Event(str(uuid.uuid4()), version[0], version[1], f"{table}.{data['op']}", data)
        fixes.append(Fix(site, event, source))
    return fixes


def send(config: Config, fixes: Sequence[Fix], progress: bool = True) -> int:
    """Send each repair event to its site's queue; the events sent."""
    sent = 0
    meter = Meter("repair", len(fixes), unit="events") if progress else None
    for site in sorted({f.site for f in fixes}):
        with Sender(config, site, "repair") as sender:
            mine = iter([f.event for f in fixes if f.site == site])
            sent += send_all(sender, config, mine, meter).events
    if meter is not None:
        meter.finish()
    return sent


def wait_applied(
    config: Config,
    urls: Mapping[str, str],
    fixes: Sequence[Fix],
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> list[Fix]:
    """Wait until every repair event is in its site's inbox (decided on: applied, or lost
    to a newer change); the ones not there when `timeout` runs out. One connection per
    site for the whole wait."""
    deadline = clock() + timeout
    left = list(fixes)
    with contextlib.ExitStack() as stack:
        sites: dict[str, tuple[Any, Any]] = {}
        for site in {f.site for f in fixes}:
            dialect = for_url(urls[site])
            conn = dialect.connect(urls[site])
            stack.callback(conn.close)
            sites[site] = (dialect, conn)
        while left:
            done: set[str] = set()
            for site, (dialect, conn) in sites.items():
                done |= decided(dialect, conn, [f.event.id for f in left if f.site == site])
            left = [f for f in left if f.event.id not in done]
            if not left or clock() >= deadline:
                break
            time.sleep(WAIT_POLL)
    return left


def decided(dialect: Any, conn: Any, ids: Sequence[str]) -> set[str]:
    """Which of these events a site has decided on (they are in its inbox)."""
    found: set[str] = set()
    with conn.transaction(), conn.cursor() as cur:
        for start in range(0, len(ids), 500):
            chunk = [literal(str(uuid.UUID(i))) for i in ids[start : start + 500]]
            cur.execute(dialect.render("inbox_has", ids=chunk))
            found.update(str(row[0]) for row in cur.fetchall())
    return found


def check(config: Config, urls: Mapping[str, str], sites: Iterable[str]) -> None:
    if not config.is_archive:
        raise ConfigError(
            f"site {config.site} is not the archive site ({config.archive_site}): run bridge "
            "repair with the archive site's configuration and every other site in 'peers'"
        )
    missing = [s for s in config.sites if s not in urls]
    if missing:
        raise ConfigError(
            f"no database URL for site(s) {', '.join(missing)}: give --peer SITE=URL or "
            "'peers' (repair reads every site's rows)"
        )
    unknown = [s for s in sites if s not in config.sites]
    if unknown:
        raise ConfigError(f"unknown site(s) {', '.join(unknown)}; sites are {list(config.sites)}")


@dataclass
class Report:
    before: Comparison
    plan: Plan
    sent: int = 0
    unapplied: list[Fix] = field(default_factory=list)  # not decided on within the wait
    after: Comparison | None = None  # verify again once every repair event was decided on


def run(
    config: Config,
    peers: Mapping[str, str],
    sites: Sequence[str] = (),
    tables: Sequence[str] | None = None,
    dry_run: bool = False,
    wait: float = 120.0,
    chunk_rows: int | None = None,
    progress: bool = True,
) -> Report:
    """verify, plan, send the repair events, wait until the sites decided on them, verify
    again. `sites`: repair only these (default every site that differs)."""
    urls = {config.site: config.database_url, **peers}
    check(config, urls, sites)
    rows = chunk_rows or DEFAULT_CHUNK_ROWS
    before = compare(config, peers, tables, chunk_rows=rows)
    report = Report(before, Plan())
    if before.ok:
        return report
    report.plan = plan(config, urls, before.differences, sites or None)
    for table, key, why in report.plan.busy:
        log.warning("site=%s table=%s key=%s not repaired: %s", config.site, table, key, why)
    if dry_run or not report.plan.fixes:
        return report
    report.sent = send(config, report.plan.fixes, progress)
    if wait <= 0:
        return report
    report.unapplied = wait_applied(config, urls, report.plan.fixes, wait)
    if not report.unapplied:
        report.after = compare(config, peers, tables, chunk_rows=rows)
    return report
