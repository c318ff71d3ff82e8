"""`bridge run`'s /metrics and /healthz (metrics_address) on real bridges: the counters
match the events written, the backlog drains to 0, the lag histogram counts every event
applied; /healthz turns 503 with its reason when the database drops the bridge's
connections, and when the bridge stops."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from typing import Any

import psycopg
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bridge import __version__
from bridge.dialects import for_url
from bridge.metrics import Metrics, Sources
from bridge.probe import Probe
from bridge.run import Bridge
from bridge.stats import Stats
from tests.conftest import db_of, pg_url, running, sql, wait_for

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(bridge: Bridge) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{bridge.metrics_port}/metrics", timeout=10) as r:
        assert r.status == 200
        return parse(r.read().decode())


def healthz(bridge: Bridge) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{bridge.metrics_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_count_the_events_and_healthz_tells_what_is_wrong(sites):
    paris, london = (
        dataclasses.replace(sites[n], metrics_address="127.0.0.1:0") for n in ("PARIS", "LONDON")
    )
    with running(paris, london) as bridges:
        at_paris, at_london = bridges["PARIS"], bridges["LONDON"]
        assert at_paris.metrics_port and at_london.metrics_port
        for b in (at_paris, at_london):
            wait_for(lambda b=b: healthz(b)[0] == 200, 60, f"{b.config.site} healthy")
        assert healthz(at_paris) == (200, {"healthy": True})

        # 5 events in 3 transactions (3 messages) at LONDON
        db = db_of(london)
        sql(db, "INSERT INTO orders (id, customer) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        sql(db, "UPDATE orders SET note = 'x' WHERE id = 1")
        sql(db, "DELETE FROM orders WHERE id = 2")

        def synced() -> bool:
            got = scrape(at_london)
            return (
                value(got, "bridge_outbox_unpublished_events") == 0
                and value(got, "bridge_outbox_awaiting_echo_events") == 0
                and value(got, "bridge_events_received_total", outcome="echo") == 5
                and value(scrape(at_paris), "bridge_events_received_total", outcome="applied") == 5
            )

        wait_for(synced, 60, "LONDON's 5 events applied at PARIS and echoed at LONDON", 0.5)
        got = scrape(at_london)
        assert value(got, "bridge_events_published_total") == 5
        assert value(got, "bridge_events_received_total", outcome="applied") == 0
        assert value(got, "bridge_outbox_oldest_unpublished_age_seconds") == 0
        assert value(got, "bridge_echo_round_trip_seconds_count") == 3  # messages
        assert value(got, "bridge_info", site="LONDON", version=__version__) == 1
        assert value(got, "bridge_trigger_stale", table="orders") == 0
        assert value(got, "bridge_database_up") == 1
        assert value(got, "bridge_broker_connected", part="dispatcher") == 1
        assert value(got, "bridge_part_up", part="consumer") == 1
        assert value(got, "bridge_healthy") == 1

        got = scrape(at_paris)
        assert value(got, "bridge_events_received_total", outcome="applied") == 5
        assert value(got, "bridge_events_received_total", outcome="archived") == 5
        assert value(got, "bridge_events_published_total") == 0
        assert value(got, "bridge_apply_lag_seconds_count", origin="LONDON") == 5
        assert value(got, "bridge_apply_lag_seconds_bucket", origin="LONDON", le="+Inf") == 5
        assert value(got, "bridge_broker_connected", part="archiver") == 1

        # the database drops every connection of PARIS's bridge: the next read fails
        with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (db_of(paris),),
            )

        def unhealthy() -> list[str]:
            code, body = healthz(at_paris)
            return body["reasons"] if code == 503 else []

        reasons = wait_for(unhealthy, 30, "PARIS unhealthy after its connections were dropped")
        assert body_says(reasons, "database did not answer")
        wait_for(lambda: healthz(at_paris)[0] == 200, 30, "PARIS healthy again")
        got = scrape(at_paris)
        assert (value(got, "bridge_scrape_errors_total") or 0) >= 1
        assert value(got, "bridge_database_up") == 1

        # stopping: 503 while the parts finish, then the endpoint goes with the bridge
        at_paris.stop_event.set()
        code, body = healthz(at_paris)
        assert code == 503 and "the bridge is stopping" in body["reasons"]
        wait_for(
            lambda: body_says(healthz(at_paris)[1]["reasons"], "bridge-dispatcher thread"),
            30,
            "the dispatcher's thread reported stopped",
        )
        port = at_paris.metrics_port
        at_paris.stop()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)


def body_says(reasons: list[str], part: str) -> bool:
    return any(part in reason for reason in reasons)


def test_backlog_gauges_read_the_outbox(sites):
    """At a site whose bridge is not running, the gauges show what waits in the outbox."""
    cfg = sites["MADRID"]
    sql(db_of(cfg), "INSERT INTO orders (id, customer) VALUES (1, 'a'), (2, 'b')")
    probe = Probe(cfg, for_url(cfg.database_url))
    try:
        got = parse(generate_latest(Metrics(Sources(cfg.site, Stats(), probe)).registry).decode())
    finally:
        probe.close()
    assert value(got, "bridge_outbox_unpublished_events") == 2
    assert value(got, "bridge_outbox_awaiting_echo_events") == 0
    assert (value(got, "bridge_outbox_oldest_unpublished_age_seconds") or 0) > 0
    assert value(got, "bridge_database_up") == 1
    assert value(got, "bridge_trigger_stale", table="orders") == 0
