"""Scheduled purge (default: older than 90 days) of the archive, the inbox, tombstones,
conflicts and acks.

Why there is a minimum of one day: an inbox entry is what makes a redelivered event a no-op
at this site, and a tombstone is what keeps a change older than a delete from bringing the
row back. Events can still be on their way long after they were made (in a queue, in the
outbox of a site that is cut off), so purging all of them would let such events be applied
again. Keep the retention longer than any outage a site may need to recover from.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from typing import Any

from bridge import install
from bridge.config import Config
from bridge.errors import ConfigError, one_line
from bridge.event import format_timestamp, parse_timestamp

log = logging.getLogger(__name__)

MIN_DAYS = 1
_DAYS = re.compile(r"^\s*(\d+)\s*d?\s*$", re.ASCII | re.IGNORECASE)


def parse_days(text: str) -> int:
    """`90` or `90d` -> 90. ConfigError saying what is allowed otherwise."""
    match = _DAYS.match(text)
    if match is None:
        raise ConfigError(
            f"{text!r} is not a number of days: write a whole number of days, "
            f"{MIN_DAYS} or more, as 90 or 90d"
        )
    return check_days(int(match.group(1)))


def check_days(days: int) -> int:
    if days < MIN_DAYS:
        raise ConfigError(
            f"{days} days is too short: the minimum is {MIN_DAYS} day. Cleanup deletes the "
            "inbox entries that make a redelivered event a no-op and the tombstones that "
            "keep a late, older change from bringing a deleted row back; events still "
            "queued or waiting in a cut-off site's outbox would be applied again. Keep it "
            "longer than any outage a site may need to recover from (default 90)"
        )
    return days


# What cleanup purges, in this order; each kind in statements of at most BATCH rows, each
# in a transaction of its own (a long purge neither holds locks nor grows one transaction).
KINDS = ("archive", "inbox", "tombstones", "conflicts", "acks")
BATCH = 10_000


def cleanup(
    config: Config,
    dialect: Any,
    older_than_days: int | None = None,
    dry_run: bool = False,
    batch: int = BATCH,
) -> dict[str, int]:
    """Delete what is older than the retention: archive entries, inbox entries, tombstones,
    conflicts, ack entries, each kind in batches of at most `batch` rows; with `dry_run`,
    only count them. Returns the rows per kind.

    The cutoff (the database's clock minus the retention) is recorded as this site's
    cleanup horizon before anything is deleted, in a transaction of its own: a replayed
    event older than it is not applied here (bridge/apply.py), even if a purge is cut
    short."""
    days = check_days(older_than_days if older_than_days is not None else config.retention_days)
    counts: dict[str, int] = {}
    conn = dialect.connect(config.database_url)
    try:
        install.require_initialised(dialect, conn, config.site)
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(dialect.render("clock"))
            cutoff = _utc(cur.fetchone()[0]) - dt.timedelta(days=days)
            if not dry_run:
                _record_horizon(dialect, cur, cutoff)
        binds = {"cutoff": cutoff, "limit": batch}
        if dry_run:
            with conn.transaction(), conn.cursor() as cur:
                for stmt in dialect.statements("cleanup", dry_run=True, kind=None):
                    counts.update(_counted(cur, stmt, binds))
        else:
            for kind in KINDS:
                statements = dialect.statements("cleanup", dry_run=False, kind=kind)
                while True:
                    with conn.transaction(), conn.cursor() as cur:
                        removed: dict[str, int] = {}
                        for stmt in statements:
                            removed.update(_counted(cur, stmt, binds))
                    for what, n in removed.items():
                        counts[what] = counts.get(what, 0) + n
                    if sum(removed.values()) < batch:
                        break
    finally:
        conn.close()
    log.info(
        "site=%s cleanup%s: older than %d days (before %s): %s",
        config.site,
        " (dry run, nothing deleted)" if dry_run else "",
        days,
        format_timestamp(cutoff),
        ", ".join(f"{n} {what}" for what, n in counts.items()),
    )
    return counts


def _counted(cur: Any, statement: str, binds: dict[str, Any]) -> dict[str, int]:
    """Run one statement of the cleanup template: the (what, rows) it returns, if any (a
    DELETE that a SELECT of its count follows returns none)."""
    cur.execute(statement, binds)
    if cur.description is None:
        return {}
    return {what: int(n) for what, n in cur.fetchall()}


HORIZON_KEY = "cleanup"  # bridge_meta: {"purged_before": timestamp}


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _record_horizon(dialect: Any, cur: Any, cutoff: dt.datetime) -> None:
    """Remember the latest cutoff a cleanup purged before (it only moves forward)."""
    known = _read_horizon(dialect, cur)
    if known is not None and known >= cutoff:
        return
    install.meta_put(dialect, cur, HORIZON_KEY, {"purged_before": format_timestamp(cutoff)})


def _read_horizon(dialect: Any, cur: Any) -> dt.datetime | None:
    value = install.meta_get(dialect, cur, HORIZON_KEY)
    return None if value is None else parse_timestamp(value["purged_before"])


def cleanup_horizon(dialect: Any, conn: Any) -> dt.datetime | None:
    """Before when cleanup has purged inbox entries and tombstones at this site (None if it
    never purged anything): an event older than that may be applied again if it comes
    back, so a replay must not apply it (bridge/apply.py)."""
    with conn.transaction(), conn.cursor() as cur:
        return _read_horizon(dialect, cur)


def schedule(config: Config, dialect: Any, stop: threading.Event) -> None:
    """Run `cleanup` every `cleanup_interval` seconds until stop is set (a thread target)."""
    while not stop.wait(config.cleanup_interval):
        try:
            cleanup(config, dialect)
        except Exception as exc:  # noqa: BLE001 - keep the schedule alive, say why it failed
            log.warning("site=%s scheduled cleanup failed: %s", config.site, one_line(exc))
