"""`bridge run`'s Prometheus metrics, in a registry of the Bridge's own (tests run several
bridges in one process). Most are read at scrape time, not counted on the hot paths: the
process's counters (bridge/stats.py), the outbox backlog and trigger drift from the
database (bridge/probe.py), the threads and broker links (bridge/liveness.py). Two
histograms are observed as events go: the apply lag of every event applied here, and the
round trip of every own message from its publish to its echo.

`declared()` lists what a Bridge's registry exposes (docs/operations.md, "Metrics", and
docs/grafana/bridge.json are tested against it)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import bridge
from bridge.archive import ARCHIVE_DUPLICATE, ARCHIVED
from bridge.decision import APPLIED, CONFLICT, DUPLICATE, ECHO, REJECTED, SUPERSEDED, WAITING
from bridge.probe import Probe
from bridge.stats import APPLY_LAG, ECHO_ROUND_TRIP, Stats

# what became of the events the consumers took, by the Stats name they are counted under
OUTCOMES = (
    APPLIED,
    DUPLICATE,
    SUPERSEDED,
    CONFLICT,
    ECHO,
    WAITING,
    REJECTED,
    ARCHIVED,
    ARCHIVE_DUPLICATE,
)
PARTS = ("dispatcher", "consumer", "archiver")  # the parts holding a broker connection
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
ROUND_TRIP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass(frozen=True)
class Spec:
    """One metric: its name as queried (counters end in `_total`), kind, labels, help."""

    name: str
    kind: str  # counter, gauge, histogram
    labels: tuple[str, ...]
    help: str


# counters of the process (bridge/stats.py): spec, and the Stats name of each label value
# (a single value for a family without labels)
COUNTERS: tuple[tuple[Spec, dict[str, str]], ...] = (
    (
        Spec(
            "bridge_events_published_total",
            "counter",
            (),
            "outbox rows whose publish the broker confirmed",
        ),
        {"": "published"},
    ),
    (
        Spec(
            "bridge_events_republished_total",
            "counter",
            (),
            "outbox rows published again because this site's own queue lost them",
        ),
        {"": "republished"},
    ),
    (
        Spec(
            "bridge_events_nacked_total",
            "counter",
            (),
            "outbox rows whose publish the broker refused or could not route (published again)",
        ),
        {"": "nacked"},
    ),
    (
        Spec(
            "bridge_events_received_total",
            "counter",
            ("outcome",),
            "events the consumers took, by what became of them",
        ),
        {o: o for o in OUTCOMES},
    ),
    (
        Spec(
            "bridge_dead_letters_total",
            "counter",
            (),
            "messages (or events of a message) sent to a dead-letter queue",
        ),
        {"": "dead_lettered"},
    ),
    (
        Spec(
            "bridge_reconnects_total",
            "counter",
            ("part",),
            "broker or database sessions that failed and were started again",
        ),
        {"dispatcher": "dispatcher_reconnects", "consumer": "consumer_reconnects"},
    ),
    (
        Spec(
            "bridge_database_retries_total",
            "counter",
            (),
            "consumer batches kept and retried because the database was unavailable",
        ),
        {"": "database_retries"},
    ),
    (
        Spec(
            "bridge_ack_messages_sent_total",
            "counter",
            (),
            "ack messages published to the emitters (each: the acks of one batch)",
        ),
        {"": "acks_sent"},
    ),
    (
        Spec(
            "bridge_ack_messages_dropped_total",
            "counter",
            (),
            "ack messages dropped (not publishable, or too many waiting)",
        ),
        {"": "acks_dropped"},
    ),
    (
        Spec(
            "bridge_acks_received_total",
            "counter",
            (),
            "acks of this site's events recorded from other sites",
        ),
        {"": "acks_received"},
    ),
    (
        Spec(
            "bridge_ack_messages_received_total",
            "counter",
            (),
            "ack messages from other sites recorded",
        ),
        {"": "ack_messages_received"},
    ),
    (
        Spec(
            "bridge_ack_messages_refused_total",
            "counter",
            (),
            "ack messages dropped as malformed or not this site's",
        ),
        {"": "acks_refused"},
    ),
)

INFO = Spec(
    "bridge_info", "gauge", ("site", "version"), "always 1: this process's site and version"
)
# read from the database at scrape time (bridge/probe.py)
UNPUBLISHED = Spec("bridge_outbox_unpublished_events", "gauge", (), "outbox rows not yet published")
AWAITING_ECHO = Spec(
    "bridge_outbox_awaiting_echo_events",
    "gauge",
    (),
    "outbox rows published, waiting for their echo through this site's queue",
)
OLDEST_UNPUBLISHED = Spec(
    "bridge_outbox_oldest_unpublished_age_seconds",
    "gauge",
    (),
    "age of the oldest unpublished outbox row (0: none)",
)
OLDEST_UNECHOED = Spec(
    "bridge_outbox_oldest_unechoed_age_seconds",
    "gauge",
    (),
    "age of the oldest published outbox row whose echo has not come back (0: none)",
)
WAITING_EVENTS = Spec(
    "bridge_waiting_events",
    "gauge",
    (),
    "received events waiting for a row they reference (bridge_waiting)",
)
DATABASE_UP = Spec(
    "bridge_database_up", "gauge", (), "1 if the last read of the metrics' database worked"
)
SCRAPE_ERRORS = Spec(
    "bridge_scrape_errors_total",
    "counter",
    (),
    "database reads of the metrics (status, trigger drift) that failed",
)
TRIGGER_STALE = Spec(
    "bridge_trigger_stale",
    "gauge",
    ("table",),
    "1 if the table's capture trigger is missing or stale (`bridge status` says why)",
)
# the process
PART_UP = Spec(
    "bridge_part_up", "gauge", ("part",), "1 while the part's thread runs (bridge run's parts)"
)
BROKER_CONNECTED = Spec(
    "bridge_broker_connected",
    "gauge",
    ("part",),
    "1 while the part holds its broker connection",
)
HEALTHY = Spec("bridge_healthy", "gauge", (), "1 if GET /healthz answers 200")
# observed as events go
LAG = Spec(
    "bridge_apply_lag_seconds",
    "histogram",
    ("origin",),
    "seconds from an event's timestamp at its origin to its apply here (outcome applied)",
)
ROUND_TRIP = Spec(
    "bridge_echo_round_trip_seconds",
    "histogram",
    (),
    "seconds from publishing a message to its echo coming back through this site's queue",
)


@dataclass
class Sources:
    """What the collector reads at scrape time; None (as for `declared()`): no samples."""

    site: str
    stats: Stats | None = None
    probe: Probe | None = None
    threads: Callable[[], Sequence[threading.Thread]] | None = None
    reasons: Callable[[], list[str]] | None = None


class _Collector(Collector):
    def __init__(self, sources: Sources) -> None:
        self.s = sources

    def describe(self) -> Iterable[Metric]:
        return list(self.collect(empty=True))

    def collect(self, empty: bool = False) -> Iterator[Metric]:
        s = self.s
        counts = s.stats.snapshot() if s.stats is not None and not empty else None
        for spec, names in COUNTERS:
            family = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
            if counts is not None:
                for value, name in names.items():
                    family.add_metric([value] if value else [], counts.get(name, 0))
            yield family
        info = _gauge(INFO)
        if not empty:
            info.add_metric([s.site, bridge.__version__], 1)
        yield info
        yield from self._database(None if empty else s.probe)
        part_up, connected = _gauge(PART_UP), _gauge(BROKER_CONNECTED)
        if not empty and s.threads is not None:
            for t in s.threads():
                part_up.add_metric([t.name.removeprefix("bridge-")], int(t.is_alive()))
        if not empty and s.stats is not None:
            for part, (up, _since) in sorted(s.stats.links().items()):
                connected.add_metric([part], int(up))
        yield part_up
        yield connected
        healthy = _gauge(HEALTHY)
        if not empty and s.reasons is not None:
            healthy.add_metric([], int(not s.reasons()))
        yield healthy

    @staticmethod
    def _database(probe: Probe | None) -> Iterator[Metric]:
        state = probe.status() if probe is not None else None
        gauges = {
            spec: _gauge(spec)
            for spec in (UNPUBLISHED, AWAITING_ECHO, OLDEST_UNPUBLISHED, OLDEST_UNECHOED)
        }
        waiting = _gauge(WAITING_EVENTS)
        if state is not None:
            gauges[UNPUBLISHED].add_metric([], state.unpublished)
            gauges[AWAITING_ECHO].add_metric([], state.awaiting_echo)
            for spec, age in (
                (OLDEST_UNPUBLISHED, state.oldest_unpublished),
                (OLDEST_UNECHOED, state.oldest_unechoed),
            ):
                gauges[spec].add_metric([], age.total_seconds() if age is not None else 0.0)
            waiting.add_metric([], state.waiting)
        yield from gauges.values()
        yield waiting
        up = _gauge(DATABASE_UP)
        errors = CounterMetricFamily(SCRAPE_ERRORS.name, SCRAPE_ERRORS.help)
        stale = _gauge(TRIGGER_STALE)
        if probe is not None:
            up.add_metric([], int(probe.error is None and probe.answered_at is not None))
            errors.add_metric([], probe.errors)
            for table, is_stale in sorted((probe.drift() or {}).items()):
                stale.add_metric([table], int(is_stale))
        yield up
        yield errors
        yield stale


def _gauge(spec: Spec) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)


class Metrics:
    """A Bridge's registry: the collector and the two histograms, fed by its Stats."""

    def __init__(self, sources: Sources) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector(sources))
        self.lag = Histogram(
            LAG.name, LAG.help, LAG.labels, registry=self.registry, buckets=LAG_BUCKETS
        )
        self.round_trip = Histogram(
            ROUND_TRIP.name, ROUND_TRIP.help, registry=self.registry, buckets=ROUND_TRIP_BUCKETS
        )
        if sources.stats is not None:
            sources.stats.watch(self._observe)

    def _observe(self, name: str, label: str, seconds: float) -> None:
        seconds = max(seconds, 0.0)  # clocks of two hosts: a lag a little below 0
        if name == APPLY_LAG:
            self.lag.labels(label).observe(seconds)
        elif name == ECHO_ROUND_TRIP:
            self.round_trip.observe(seconds)


SPECS: tuple[Spec, ...] = (
    *(spec for spec, _ in COUNTERS),
    INFO,
    UNPUBLISHED,
    AWAITING_ECHO,
    OLDEST_UNPUBLISHED,
    OLDEST_UNECHOED,
    WAITING_EVENTS,
    DATABASE_UP,
    SCRAPE_ERRORS,
    TRIGGER_STALE,
    PART_UP,
    BROKER_CONNECTED,
    HEALTHY,
    LAG,
    ROUND_TRIP,
)


def declared() -> list[Spec]:
    """The metrics a Bridge's registry exposes, as its collectors describe them (name as
    queried: a counter's with `_total`, a histogram's without `_bucket` etc.)."""
    by_name = {spec.name: spec for spec in SPECS}
    found = []
    for family in Metrics(Sources("")).registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        spec = by_name.get(name)
        if spec is None or spec.kind != family.type:
            raise AssertionError(f"metric {name} ({family.type}) has no matching Spec")
        found.append(spec)
    return found


def counted(stats_names: Iterable[str]) -> set[str]:
    """Of these Stats names, the ones no metric exports."""
    exported = {name for _, names in COUNTERS for name in names.values()}
    return set(stats_names) - exported
