"""bridge/metrics.py exports every counter the process keeps; metrics_address is parsed
and checked; the endpoint serves /metrics and /healthz over real HTTP."""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge import config
from bridge.decision import APPLIED
from bridge.errors import ConfigError
from bridge.metrics import OUTCOMES, Metrics, Sources, counted
from bridge.serve import Endpoint, is_loopback
from bridge.stats import APPLY_LAG, Stats

pytestmark = pytest.mark.unit

BRIDGE = Path(__file__).resolve().parents[2] / "bridge"
BASE = {
    "site": "PARIS",
    "database_url": "postgresql://127.0.0.1/paris",
    "amqp_url": "amqp://paris:x@127.0.0.1:5680/",
    "sites": ["PARIS"],
    "tables": ["orders"],
}


def test_every_counter_the_process_keeps_is_exported():
    names = {
        name
        for path in BRIDGE.glob("*.py")
        for name in re.findall(r'stats\.add\(\s*"(\w+)"', path.read_text())
    }
    assert "published" in names and "acks_sent" in names  # the scan finds them
    assert counted(names | set(OUTCOMES)) == set()


@pytest.mark.parametrize(
    ("value", "stored"),
    [("", ""), (" 127.0.0.1:9464 ", "127.0.0.1:9464"), ("[::1]:0", "[::1]:0"), ("h:1", "h:1")],
)
def test_metrics_address_accepted(value, stored):
    assert config.from_mapping({**BASE, "metrics_address": value}).metrics_address == stored


@pytest.mark.parametrize("value", ["9464", "127.0.0.1", ":9464", "host:port", "h:70000"])
def test_metrics_address_refused_with_an_example(value):
    with pytest.raises(ConfigError, match="'metrics_address'.*127.0.0.1:9464"):
        config.from_mapping({**BASE, "metrics_address": value})


def test_default_is_off():
    assert config.from_mapping(BASE).metrics_address == ""


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("10.1.2.3", False), ("monitor.example", False)],
)  # fmt: skip
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_endpoint_serves_metrics_and_health():
    stats = Stats()
    metrics = Metrics(Sources("PARIS", stats))
    stats.add(APPLIED, 3)
    stats.observe(APPLY_LAG, "LONDON", 0.2)
    reasons: list[str] = []
    endpoint = Endpoint("PARIS", "127.0.0.1:0", metrics.registry, lambda: list(reasons))
    endpoint.start()
    try:
        base = f"http://127.0.0.1:{endpoint.port}"
        code, body = get(f"{base}/metrics")
        assert code == 200
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }
        assert samples[("bridge_events_received_total", (("outcome", "applied"),))] == 3
        assert samples[("bridge_apply_lag_seconds_count", (("origin", "LONDON"),))] == 1
        assert get(f"{base}/healthz") == (200, b'{"healthy": true}')
        reasons.append("consumer not connected to the broker yet")
        code, body = get(f"{base}/healthz")
        assert code == 503
        assert json.loads(body) == {"healthy": False, "reasons": reasons}
        assert get(f"{base}/other")[0] == 404
        with pytest.raises(ConfigError, match="cannot serve metrics on 127.0.0.1:"):
            Endpoint("PARIS", f"127.0.0.1:{endpoint.port}", metrics.registry, list)
    finally:
        endpoint.stop()


def test_beyond_loopback_is_served_with_a_warning(caplog):
    registry = Metrics(Sources("PARIS")).registry
    with caplog.at_level(logging.WARNING, logger="bridge.serve"):
        Endpoint("PARIS", "127.0.0.1:0", registry, list).stop()
        assert caplog.records == []
        Endpoint("PARIS", "0.0.0.0:0", registry, list).stop()
    assert [r.getMessage() for r in caplog.records] == [
        "site=PARIS metrics and health served on 0.0.0.0:0, beyond this host: make sure only "
        "your monitoring reaches it"
    ]
