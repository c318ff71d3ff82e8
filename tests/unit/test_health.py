"""What makes a site unhealthy (bridge/health.py) and the JSON `bridge status --json`
prints (bridge/status_report.py), held to the example in docs/operations.md."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bridge import config as config_mod
from bridge.health import BrokerState, Health, dead_letter_queues, reasons
from bridge.status import Destination, Problems, SiteStatus
from bridge.status_report import (
    UP_TO_DATE,
    TableState,
    error_report,
    event_report,
    report,
)

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
# maps whose keys are names (tables, queues), not part of the format
NAMED = {"tables": "<table>", "broker.dead_letter_queues": "<queue>"}


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON value (`broker.reachable`, `tables.<table>.policy`,
    `acked_problems.latest[].site`); a list is described by its first item."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}{NAMED.get(prefix.rstrip('.'), key)}"
            paths.add(path)
            paths |= key_paths(item, f"{path}.")
    elif isinstance(value, list) and value:
        paths |= key_paths(value[0], f"{prefix[:-1]}[].")
    return paths


def documented_example() -> dict[str, Any]:
    """The JSON example under the marker in docs/operations.md."""
    text = DOCS.read_text()
    found = re.search(r"<!-- status-json-example -->\n```json\n(.*?)\n```", text, re.S)
    assert found, "docs/operations.md lost its `bridge status --json` example"
    example: dict[str, Any] = json.loads(found.group(1))
    return example


def cfg(site: str = "PARIS", **over: Any) -> config_mod.Config:
    raw = {
        "site": site,
        "database_url": "postgresql://x@127.0.0.1/x",
        "amqp_url": "amqp://paris:pw@127.0.0.1:5680/",
        "sites": ["PARIS", "LONDON"],
        "archive_site": "PARIS",
        "tables": {"orders": "lww"},
    }
    return config_mod.from_mapping({**raw, **over})


def broker(dead: dict[str, int | None] | None = None) -> BrokerState:
    return BrokerState(True, "SITE_PARIS", 0, dead or {})


def state(oldest_unpublished: float | None = None, **dispatcher: int) -> SiteStatus:
    age = None if oldest_unpublished is None else dt.timedelta(seconds=oldest_unpublished)
    return SiteStatus(3, 2, age, dt.timedelta(seconds=0.5), 10, 1, 0, 20, dispatcher)


def test_the_status_max_backlog_age_key_defaults_to_300_seconds():
    assert cfg().status_max_backlog_age == 300.0
    assert cfg(status_max_backlog_age="0").status_max_backlog_age == 0.0
    with pytest.raises(config_mod.ConfigError, match="'status_max_backlog_age' must be >= 0"):
        cfg(status_max_backlog_age="-1")


def test_a_healthy_site_has_no_reason():
    assert reasons(cfg(), None, 300.0, {}, broker()) == []
    assert reasons(cfg(), dt.timedelta(seconds=300), 300.0, {}, broker()) == []


def test_a_backlog_older_than_the_threshold_is_a_reason():
    (reason,) = reasons(cfg(), dt.timedelta(seconds=301), 300.0, {}, broker())
    assert reason.startswith("backlog: the oldest unpublished outbox row is 301.0s old")
    assert "more than 300s" in reason and "is `bridge run` running" in reason
    assert reasons(cfg(), dt.timedelta(microseconds=1), 0.0, {}, broker()) != []


def test_the_brokers_problems_and_stale_triggers_are_reasons():
    unreachable = BrokerState(False, "SITE_PARIS", problems=["broker unreachable: refused"])
    drift = {"orders": "no capture trigger installed: run bridge install-triggers"}
    assert reasons(cfg(), None, 300.0, drift, unreachable) == [
        "broker unreachable: refused",
        "table orders: no capture trigger installed: run bridge install-triggers",
    ]


def test_dead_letters_name_their_queue_and_the_command_to_see_them():
    found = reasons(
        cfg(), None, 300.0, {}, broker({"SITE_PARIS.dlq": 2, "SITE_PARIS_HISTO.dlq": 1})
    )
    assert found == [
        "2 dead letter(s) waiting in SITE_PARIS.dlq: see them with `bridge dlq list`, then "
        "`bridge dlq retry` or `drop` them",
        "1 dead letter(s) waiting in SITE_PARIS_HISTO.dlq: see them with `bridge dlq "
        "--archive list`, then `bridge dlq --archive retry` or `drop` them",
    ]
    assert broker({"SITE_PARIS.dlq": 2, "SITE_PARIS_HISTO.dlq": None}).dead_letters == 2
    assert broker({"SITE_PARIS.dlq": None}).dead_letters is None  # not counted: unknown


def test_the_archive_site_watches_the_archives_dead_letter_queue_too():
    assert dead_letter_queues(cfg("PARIS")) == ["SITE_PARIS.dlq", "SITE_PARIS_HISTO.dlq"]
    assert dead_letter_queues(cfg("LONDON")) == ["SITE_LONDON.dlq"]


def sample_report() -> dict[str, Any]:
    dead = broker({"SITE_PARIS.dlq": 1, "SITE_PARIS_HISTO.dlq": 0})
    health = Health(reasons(cfg(), None, 300.0, {}, dead), 300.0, None, {}, dead)
    problems = Problems(1, [("0b6f", "MADRID", "conflict", "lost")])
    tables = [TableState("orders", "lww", UP_TO_DATE, None)]
    return report("PARIS", state(sent=1, confirmed=1), problems, tables, health)


def test_the_documented_example_has_the_keys_of_the_real_output():
    documented, real = documented_example(), sample_report()
    assert key_paths(documented) == key_paths(real)
    assert list(documented) == list(real)  # in the same order
    # the example's reason is one bridge gives
    assert documented["reasons"] == real["reasons"]
    json.dumps(real)  # JSON as it is


def test_the_report_gives_ages_in_seconds_and_the_verdict():
    out = sample_report()
    assert (out["healthy"], out["oldest_unpublished"], out["oldest_unechoed"]) == (False, None, 0.5)
    assert out["dispatcher"]["republish_ratio"] == 0.0
    assert out["broker"]["dead_letters"] == 1
    assert out["tables"]["orders"]["trigger_current"] is True
    stale = TableState("orders", "lww", "columns changed since the trigger was installed", None)
    assert stale.trigger_current is False


def test_event_and_error_reports():
    at = dt.datetime(2026, 11, 28, 5, 40, 1, tzinfo=dt.UTC)
    out = event_report(
        "e1", [Destination("LONDON", "applied", "", at), Destination("MADRID", "pending")]
    )
    assert out == {
        "event": "e1",
        "destinations": [
            {
                "site": "LONDON",
                "status": "applied",
                "reason": "",
                "acked_at": "2026-11-28T05:40:01+00:00",
            },
            {"site": "MADRID", "status": "pending", "reason": "", "acked_at": None},
        ],
    }
    assert error_report(None, "ConfigError: x") == {
        "site": None,
        "healthy": False,
        "reasons": ["ConfigError: x"],
    }
