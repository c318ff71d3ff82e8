"""`bridge status`: what a site's database says about its bridge: the outbox's backlog and
the age of its oldest rows, what was applied, logged and archived, and how much the
dispatcher published again (republishing follows evidence of a lost message, so more than a
small fraction of what is published points at a problem: bridge/dispatcher.py); from the
acks (bridge/acks.py), what became of one event at each site, and the recent failures."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from bridge.ackwire import ARCHIVE_SUFFIX
from bridge.config import Config
from bridge.errors import EventError

REPUBLISH_WARNING = 0.05  # of the messages confirmed
REPUBLISH_MINIMUM = 100  # confirmed messages before the ratio means anything


@dataclass(frozen=True)
class Backlog:
    """The outbox's backlog and the events waiting for a row: what `bridge run`'s metrics
    read every few seconds (`read_backlog`), cheap at any size of the inbox or archive."""

    unpublished: int
    awaiting_echo: int
    oldest_unpublished: dt.timedelta | None
    oldest_unechoed: dt.timedelta | None
    waiting: int  # events waiting for a row they reference (bridge_waiting)


@dataclass(frozen=True)
class SiteStatus:
    unpublished: int
    awaiting_echo: int
    oldest_unpublished: dt.timedelta | None
    oldest_unechoed: dt.timedelta | None
    applied: int
    conflicts: int
    waiting: int  # events waiting for a row they reference (bridge_waiting)
    archived: int
    # sent, messages, confirmed, republished
    dispatcher: dict[str, int] = field(default_factory=dict)

    @property
    def republish_ratio(self) -> float | None:
        confirmed = self.dispatcher.get("confirmed", 0)
        return self.dispatcher.get("republished", 0) / confirmed if confirmed else None

    def warnings(self) -> list[str]:
        found = []
        ratio = self.republish_ratio
        if (
            ratio is not None
            and ratio > REPUBLISH_WARNING
            and self.dispatcher.get("confirmed", 0) >= REPUBLISH_MINIMUM
        ):
            found.append(
                f"{ratio:.1%} of the messages confirmed were published again (more than "
                f"{REPUBLISH_WARNING:.0%}): this site's own queue lost messages, or its "
                "consumer redelivers out of order; check the broker's logs and docs/operations.md"
            )
        if self.waiting:
            found.append(
                f"{self.waiting} event(s) wait for a row they reference that is not here (a "
                "parent not arrived yet): see bridge_waiting and docs/operations.md"
            )
        return found

    def lines(self) -> list[tuple[str, str]]:
        def age(value: dt.timedelta | None) -> str:
            return "-" if value is None else f"{value.total_seconds():.1f}s"

        ratio = self.republish_ratio
        return [
            ("unpublished", str(self.unpublished)),
            ("awaiting_echo", str(self.awaiting_echo)),
            ("oldest_unpublished", age(self.oldest_unpublished)),
            ("oldest_unechoed", age(self.oldest_unechoed)),
            ("applied", str(self.applied)),
            ("conflicts", str(self.conflicts)),
            ("waiting", str(self.waiting)),
            ("archived", str(self.archived)),
            ("sent", str(self.dispatcher.get("sent", 0))),
            ("messages", str(self.dispatcher.get("messages", 0))),
            ("confirmed", str(self.dispatcher.get("confirmed", 0))),
            ("republished", str(self.dispatcher.get("republished", 0))),
            ("republish_ratio", "-" if ratio is None else f"{ratio:.2%}"),
        ]


def _values(dialect: Any, conn: Any, backlog: bool) -> dict[str, Any]:
    cur = conn.execute(dialect.render("status", backlog=backlog))
    row = cur.fetchone()
    assert row is not None and cur.description is not None
    values = dict(zip([d.name for d in cur.description], row, strict=True))
    for age_of in ("oldest_unpublished", "oldest_unechoed"):
        if isinstance(values[age_of], int):  # microseconds (MariaDB, SQL Server)
            values[age_of] = dt.timedelta(microseconds=values[age_of])
    return values


def read_backlog(dialect: Any, conn: Any) -> Backlog:
    """The backlog alone: no count of the inbox, conflicts or archive."""
    return Backlog(**_values(dialect, conn, backlog=True))


def read(dialect: Any, conn: Any) -> SiteStatus:
    values = _values(dialect, conn, backlog=False)
    counters = values.pop("dispatcher") or {}
    if isinstance(counters, str):
        counters = json.loads(counters)
    return SiteStatus(**values, dispatcher={k: int(v) for k, v in counters.items()})


PENDING = "pending"  # no ack from that site yet
PROBLEM_HOURS = 24  # `bridge status` sums up the failures and conflicts acked this long ago
PROBLEM_EXAMPLES = 5  # ... and shows the latest few


@dataclass(frozen=True)
class Destination:
    """What a site that received an event said became of it (bridge/acks.py)."""

    site: str
    status: str  # an ack's status (bridge/ackwire.py), or PENDING
    reason: str = ""
    acked_at: dt.datetime | None = None


def event_acks(config: Config, dialect: Any, conn: Any, event_id: str) -> list[Destination]:
    """Per destination of an event (every site in `sites` but its origin, the archive
    `<ARCHIVE>_HISTO` in topic mode, and any other site that acked it) what its latest ack
    said, PENDING where none came. The origin is
    the one the acks name, else this site (where an event's acks arrive)."""
    try:
        event_id = str(uuid.UUID(event_id))
    except ValueError:
        raise EventError(f"{event_id!r} is not an event id: give the event's UUID") from None
    rows = conn.execute(dialect.render("ack_event"), {"id": event_id}).fetchall()
    acked = {site: (status, reason or "", at) for site, _origin, status, reason, at in rows}
    origin = rows[0][1] if rows else config.site
    sites = [s for s in config.sites if s != origin]
    if config.acks == "topic":  # the archive acks what it stored
        sites.append(f"{config.archive_site}{ARCHIVE_SUFFIX}")
    sites += sorted(set(acked) - set(sites))
    return [Destination(s, *acked[s]) if s in acked else Destination(s, PENDING) for s in sites]


@dataclass(frozen=True)
class Problems:
    """Failures and conflicts acked in the last PROBLEM_HOURS hours: how many, the latest."""

    total: int
    latest: list[tuple[str, str, str, str]]  # event id, site, status, reason

    def line(self) -> str:
        if not self.total:
            return f"none in the last {PROBLEM_HOURS} h"
        shown = "; ".join(
            f"{event_id} at {site} {status}: {reason}"
            for event_id, site, status, reason in self.latest
        )
        return f"{self.total} in the last {PROBLEM_HOURS} h, latest: {shown}"


def problems(dialect: Any, conn: Any) -> Problems:
    rows = conn.execute(
        dialect.render("ack_problems"), {"hours": PROBLEM_HOURS, "limit": PROBLEM_EXAMPLES}
    ).fetchall()
    total = int(rows[0][5]) if rows else 0
    return Problems(total, [(str(r[0]), r[1], r[2], r[3] or "") for r in rows])
