"""`bridge status`: what a site's database says about its bridge: the outbox's backlog and
the age of its oldest rows, what was applied, logged and archived, and how much the
dispatcher published again (republishing follows evidence of a lost message, so more than a
small fraction of what is published points at a problem: bridge/dispatcher.py)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

REPUBLISH_WARNING = 0.05  # of the messages confirmed
REPUBLISH_MINIMUM = 100  # confirmed messages before the ratio means anything


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


def read(dialect: Any, conn: Any) -> SiteStatus:
    cur = conn.execute(dialect.render("status"))
    row = cur.fetchone()
    assert row is not None and cur.description is not None
    values = dict(zip([d.name for d in cur.description], row, strict=True))
    for age_of in ("oldest_unpublished", "oldest_unechoed"):
        if isinstance(values[age_of], int):  # microseconds (MariaDB)
            values[age_of] = dt.timedelta(microseconds=values[age_of])
    counters = values.pop("dispatcher") or {}
    if isinstance(counters, str):
        counters = json.loads(counters)
    return SiteStatus(**values, dispatcher={k: int(v) for k, v in counters.items()})
