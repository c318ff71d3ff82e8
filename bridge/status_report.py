"""`bridge status --json`: the status and health of a site as one JSON object, with the
stable keys documented in docs/operations.md ("Health and exit status"). Ages are seconds
(numbers) or null; nothing here reads a database or the broker."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bridge.health import Health
from bridge.status import PROBLEM_HOURS, Destination, Problems, SiteStatus

UP_TO_DATE = "capture trigger up to date"


@dataclass(frozen=True)
class TableState:
    """One synced table as `bridge status` shows it."""

    name: str
    policy: str
    trigger: str  # UP_TO_DATE, or what is wrong (install.drift)
    filter: str | None  # the row filter installed with --where

    @property
    def trigger_current(self) -> bool:
        return self.trigger == UP_TO_DATE


def seconds(value: dt.timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def report(
    site: str,
    state: SiteStatus,
    problems: Problems,
    tables: list[TableState],
    health: Health,
) -> dict[str, Any]:
    """The object `bridge status --json` prints."""
    broker = health.broker
    return {
        "site": site,
        "healthy": health.healthy,
        "reasons": list(health.reasons),
        "max_backlog_age": health.max_backlog_age,
        "unpublished": state.unpublished,
        "awaiting_echo": state.awaiting_echo,
        "oldest_unpublished": seconds(state.oldest_unpublished),
        "oldest_unechoed": seconds(state.oldest_unechoed),
        "applied": state.applied,
        "conflicts": state.conflicts,
        "waiting": state.waiting,
        "archived": state.archived,
        "dispatcher": {
            "sent": state.dispatcher.get("sent", 0),
            "messages": state.dispatcher.get("messages", 0),
            "confirmed": state.dispatcher.get("confirmed", 0),
            "republished": state.dispatcher.get("republished", 0),
            "republish_ratio": state.republish_ratio,
        },
        "warnings": state.warnings(),
        "acked_problems": {
            "hours": PROBLEM_HOURS,
            "total": problems.total,
            "latest": [
                {"event_id": event_id, "site": at, "status": status, "reason": reason}
                for event_id, at, status, reason in problems.latest
            ],
        },
        "tables": {
            t.name: {
                "policy": t.policy,
                "trigger_current": t.trigger_current,
                "trigger": t.trigger,
                "filter": t.filter,
            }
            for t in tables
        },
        "broker": {
            "reachable": broker.reachable,
            "queue": broker.queue,
            "queue_messages": broker.queue_messages,
            "dead_letters": broker.dead_letters,
            "dead_letter_queues": dict(broker.dead_letter_queues),
        },
    }


def event_report(event_id: str, destinations: list[Destination]) -> dict[str, Any]:
    """The object `bridge status --event ID --json` prints."""
    return {
        "event": event_id,
        "destinations": [
            {
                "site": d.site,
                "status": d.status,
                "reason": d.reason,
                "acked_at": d.acked_at.isoformat() if d.acked_at else None,
            }
            for d in destinations
        ],
    }


def error_report(site: str | None, reason: str) -> dict[str, Any]:
    """The object `bridge status --json` prints when it cannot read the status at all."""
    return {"site": site, "healthy": False, "reasons": [reason]}
