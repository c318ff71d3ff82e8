"""End to end: commit at PARIS -> applied at LONDON and MADRID and archived at PARIS.

Three site databases (`bench_e2e_paris|london|madrid`, bridge initialised, capture
triggers) and one bridge per site, each a `bridge run` subprocess (as deployed: one process
per site; `--in-process` runs them as threads of this process instead), all through the
3-node cluster in the benchmark vhost with the default settings of `bridge.config.Config`.
A writer (one connection, autocommit, prepared single-row INSERTs into PARIS's `orders`)
records the wall-clock time right after each commit.

When is an event there? The benchmark adds its own instrument to the three destinations: a
statement trigger on LONDON's and MADRID's `orders` and on PARIS's `bridge_archive` that
NOTIFYs the inserted ids. PostgreSQL delivers a notification when the transaction commits,
so a listener thread per destination learns when each row became visible there. Latency =
the latest of the three visibility times - the commit at PARIS, all on this machine's
clock. Also reported: the same from bridge's own timestamps (`bridge_inbox.applied_at`,
`bridge_archive.archived_at`), which are taken inside the applying transaction before the
rest of its batch, so they read earlier than the commit that makes the row visible.

Each round, interleaved:
- throughput: the writer commits N rows as fast as it can; events/s = N / (last visible -
  first commit). Baseline: the same writer into `bench_e2e_solo` (same table and triggers,
  no bridge), so the ratio says which part of the local write rate bridge carries through.
  CPU time of every process on the machine is accounted per group during the run.
- latency: the writer commits at a steady R/s (200) for D seconds; p50/p99 against the
  targets. Baseline: the broker floor, a bare pika publisher at the same rate and message
  size to a fanout exchange with three quorum queues (same arguments as bridge's) and a
  consumer on each; latency = last delivery - publish.
A run during which a bridge reconnected (a node restarted from outside) is redone.

Operations features, off by default (results in end_to_end_metrics.*, end_to_end_tls.*,
both: end_to_end_metrics_tls.*): `--metrics` gives every bridge a `metrics_address` on a
free 127.0.0.1 port and scrapes every bridge's /metrics once per second in a thread from
the moment they are ready to the end (bench/scrape.py; scrapes and failures in the
results); `--tls` connects every bridge with amqps:// to the cluster's TLS port
(`--amqps-host-port`, HAProxy 127.0.0.1:5690) with the cluster's CA as `tls_ca_file`. The
broker floor stays amqp:// as the admin user.

    python -m bench.end_to_end [--quick] [--rounds R] [--in-process] [--profile]
        [--metrics] [--tls]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import pika
import psycopg

from bench import cpu
from bench import profile as profiling
from bench.capture import INSERT_ONE, insert_many, make_rows
from bench.common import (
    AMQPS_HOST_PORT,
    Broker,
    Hiccup,
    attempt,
    drop_db,
    fmt,
    header,
    log,
    md_header,
    median,
    parser,
    percentile,
    rounds_order,
    table,
    verdict,
    write_results,
)
from bench.scrape import Scraper, free_ports
from bridge.config import Config
from bridge.run import Bridge
from bridge.stats import Stats
from bridge.topology import DELIVERY_LIMIT
from tests.conftest import ROOT, SITES, create_site_db, make_config, pg_url, setup_site, sql

NAME = "end_to_end"
WRITER = "PARIS"
# BRIDGE_BENCH_DB_PREFIX: another prefix than bench_, for a run beside someone else's
DB_PREFIX = os.environ.get("BRIDGE_BENCH_DB_PREFIX", "bench_")
E2E = f"{DB_PREFIX}e2e_"
SOLO_DB = f"{E2E}solo"
TARGET_P50_MS, TARGET_P99_MS = 50.0, 250.0
DESTINATIONS = ("LONDON", "MADRID", "ARCHIVE")
PROBE_EXCHANGE = "bench.probe"
# Defaults of bridge.config.Config (make_config in tests/conftest.py shortens two of them).
DEFAULTS = {"poll_interval": Config.poll_interval, "republish_after": Config.republish_after}
TLS_KEYS = ("tls_ca_file", "tls_cert_file", "tls_key_file", "tls_server_name")
SCRAPE_INTERVAL_S = 1.0


def db_of(site: str) -> str:
    return f"{E2E}{site.lower()}"


# -- the bridges -------------------------------------------------------------------------------


class Bridges(Protocol):
    mode: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def pids(self) -> dict[str, int]: ...
    def check(self) -> None: ...
    def disturbances(self) -> int: ...


def toml(cfg: Config) -> str:
    s = json.dumps  # a JSON string is a valid TOML basic string for these values
    return "\n".join(
        [
            f"site = {s(cfg.site)}",
            f"database_url = {s(cfg.database_url)}",
            f"amqp_url = {s(cfg.amqp_url)}",
            f"sites = [{', '.join(s(x) for x in cfg.sites)}]",
            f"archive_site = {s(cfg.archive_site)}",
            f"acks = {s(cfg.acks)}",
            f"metrics_address = {s(cfg.metrics_address)}",
            *(f"{k} = {s(getattr(cfg, k))}" for k in TLS_KEYS),
            "[tables]",
            *(f"{t.name} = {s(t.policy)}" for t in cfg.tables),
            "",
        ]
    )


@dataclass
class SubprocessBridges:
    """`python -m bridge --config <site>.toml run`, one process per site."""

    configs: dict[str, Config]
    workdir: Path
    mode: str = "subprocess (`bridge run` per site)"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        for site, cfg in self.configs.items():
            path = self.workdir / f"{site.lower()}.toml"
            path.write_text(toml(cfg))
            with open(self.workdir / f"{site.lower()}.log", "ab") as out:
                self.procs[site] = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bridge",
                        "--config",
                        str(path),
                        "--log-level",
                        "WARNING",
                        "run",
                    ],
                    cwd=self.workdir,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def pids(self) -> dict[str, int]:
        return {site: p.pid for site, p in self.procs.items()}

    def check(self) -> None:
        for site, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.workdir / f"{site.lower()}.log").read_text()[-2000:]
                raise RuntimeError(f"bridge {site} exited with {proc.returncode}:\n{tail}")

    def log_tail(self) -> dict[str, str]:
        return {
            site: (self.workdir / f"{site.lower()}.log").read_text()[-3000:]
            for site in self.configs
        }

    def disturbances(self) -> int:
        """Reconnections so far (each is logged as a warning ending in 'retrying')."""
        return sum(
            (self.workdir / f"{site.lower()}.log").read_text().count("retrying")
            for site in self.configs
        )


@dataclass
class ThreadBridges:
    """`bridge.run.Bridge` of each site in this process (threads), as tests/conftest.py."""

    configs: dict[str, Config]
    mode: str = "in-process (threads of the benchmark process)"
    bridges: dict[str, Bridge] = field(default_factory=dict)

    def start(self) -> None:
        for site, cfg in self.configs.items():
            self.bridges[site] = Bridge(cfg, Stats())
            self.bridges[site].start()

    def stop(self) -> None:
        for b in self.bridges.values():
            b.stop()

    def pids(self) -> dict[str, int]:
        return {"ALL": os.getpid()}

    def check(self) -> None:
        for site, b in self.bridges.items():
            if b.failed:
                raise RuntimeError(f"bridge {site} failed")

    def log_tail(self) -> dict[str, str]:
        return {site: str(b.stats) for site, b in self.bridges.items()}

    def disturbances(self) -> int:
        return sum(
            v
            for b in self.bridges.values()
            for k, v in b.stats.snapshot().items()
            if k.endswith("reconnects")
        )


def wait_ready(bridges: Bridges, broker: Broker, timeout: float = 90.0) -> None:
    """Every queue has its consumer and every site's dispatcher holds its lease."""
    deadline = time.monotonic() + timeout
    while True:
        bridges.check()
        with broker.admin() as ch:
            consumers = [
                ch.queue_declare(q, passive=True).method.consumer_count for q in broker.queues()
            ]
        leases = [
            sql(
                db_of(s),
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = "
                "l.database WHERE l.locktype = 'advisory' AND d.datname = %s",
                db_of(s),
            )[0][0]
            for s in SITES
        ]
        if all(consumers) and all(leases):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"bridges not ready: consumers {consumers}, leases {leases}")
        time.sleep(0.2)


# -- the writer, the observers and the arrivals ----------------------------------------------


@dataclass
class Written:
    first_id: int
    commits: list[float]  # time.time() right after each commit
    seconds: float
    max_lag_s: float

    @property
    def rate(self) -> float:
        return len(self.commits) / self.seconds

    @property
    def ids(self) -> range:
        return range(self.first_id, self.first_id + len(self.commits))


def write(db: str, first_id: int, n: int, rate: float | None, per_tx: int = 1) -> Written:
    """N rows in INSERT transactions of `per_tx` rows (one statement each), paced to `rate`
    rows per second (open loop) or flat out. Each row's commit time is its statement's."""
    rows = make_rows(n, first_id)
    commits: list[float] = []
    lag = 0.0
    with psycopg.connect(pg_url(db), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        t0 = time.perf_counter()
        for i in range(0, n, per_tx):
            chunk = rows[i : i + per_tx]
            if rate:
                ahead = t0 + i / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
                else:
                    lag = max(lag, -ahead)
            if len(chunk) == 1:
                cur.execute(INSERT_ONE, chunk[0], prepare=True)
            else:
                cur.execute(
                    insert_many(len(chunk)), [v for row in chunk for v in row], prepare=True
                )
            commits.extend([time.time()] * len(chunk))
        seconds = time.perf_counter() - t0
    return Written(first_id, commits, seconds, lag)


SEEN_CHANNEL = "bench_seen"
SEEN_TRIGGER = """
CREATE FUNCTION bench_seen() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids text;
BEGIN
    -- in pieces of 500 ids: a notification's payload is at most 8,000 bytes, and a
    -- set-based apply or archive inserts thousands of rows in one statement
    FOR ids IN SELECT string_agg(x.id::text, ',')
                 FROM (SELECT {id} AS id, (row_number() OVER ()) / 500 AS piece
                         FROM bench_new) AS x
                GROUP BY x.piece LOOP
        PERFORM pg_notify('bench_seen', ids);
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_seen AFTER INSERT ON {table} REFERENCING NEW TABLE AS bench_new
    FOR EACH STATEMENT EXECUTE FUNCTION bench_seen();
"""


def install_observer(dest: str) -> None:
    """A statement trigger that NOTIFYs the ids it inserted: PostgreSQL delivers a
    notification when its transaction commits, so the listener learns the moment the rows
    became visible (the benchmark's own instrument, not part of bridge)."""
    if dest == "ARCHIVE":
        text = SEEN_TRIGGER.format(id="(event -> 'data' -> 'key' ->> 'id')", table="bridge_archive")
        sql(db_of(WRITER), text)
    else:
        sql(db_of(dest), SEEN_TRIGGER.format(id="id", table="orders"))


@dataclass
class Observer:
    """LISTENs at one destination and notes when each id became visible there."""

    dest: str
    seen: dict[int, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"observe-{self.dest}", daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError(f"observer {self.dest} did not start: {self.error!r}")

    def _run(self) -> None:
        db = db_of(WRITER if self.dest == "ARCHIVE" else self.dest)
        try:
            with psycopg.connect(pg_url(db), autocommit=True) as conn:
                conn.execute(f"LISTEN {SEEN_CHANNEL}")
                self.ready.set()
                while not self.stop.is_set():
                    for note in conn.notifies(timeout=0.2):
                        at = time.time()
                        for x in note.payload.split(","):
                            if x.isdigit():
                                self.seen.setdefault(int(x), at)
        except BaseException as exc:  # noqa: BLE001 - reported through .error
            self.error = exc

    def count(self, ids: range) -> int:
        if self.error is not None:
            raise RuntimeError(f"observer {self.dest} failed: {self.error!r}")
        return sum(1 for i in ids if i in self.seen)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5)


def wait_arrived(
    written: Written, observers: dict[str, Observer], timeout: float
) -> dict[str, int]:
    """Wait until every row of the run is visible at LONDON, MADRID and in the archive."""
    n = len(written.commits)
    deadline = time.monotonic() + timeout
    while True:
        counts = {d: o.count(written.ids) for d, o in observers.items()}
        if all(c >= n for c in counts.values()) or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


@dataclass
class Arrivals:
    visible_ms: list[float]  # latest commit at a destination - commit at PARIS
    recorded_ms: list[float]  # latest applied_at/archived_at - commit at PARIS
    from_created_ms: list[float]  # latest applied_at/archived_at - outbox created_at
    per_destination_ms: dict[str, list[float]]  # visible, per destination
    last_visible: float
    complete: int
    missing: int


def arrivals(written: Written, observers: dict[str, Observer], since: float) -> Arrivals:
    """Join the run's commit times with the visibility times seen by the observers and the
    timestamps bridge recorded (inbox applied_at, archive archived_at)."""
    archive = sql(
        db_of(WRITER),
        "SELECT event_id::text, (event -> 'data' -> 'key' ->> 'id')::bigint, "
        "extract(epoch FROM ts)::float8, extract(epoch FROM archived_at)::float8 "
        "FROM bridge_archive WHERE ts >= to_timestamp(%s)",
        since,
    )
    inbox = {
        site: dict(
            sql(
                db_of(site),
                "SELECT event_id::text, extract(epoch FROM applied_at)::float8 "
                "FROM bridge_inbox WHERE applied_at >= to_timestamp(%s)",
                since,
            )
        )
        for site in ("LONDON", "MADRID")
    }
    recorded, created_lat = [], []
    for event_id, row_id, created, archived in archive:
        i = row_id - written.first_id
        london, madrid = inbox["LONDON"].get(event_id), inbox["MADRID"].get(event_id)
        if not 0 <= i < len(written.commits) or london is None or madrid is None:
            continue
        latest = max(float(london), float(madrid), float(archived))
        recorded.append((latest - written.commits[i]) * 1000)
        created_lat.append((latest - created) * 1000)
    visible: list[float] = []
    per: dict[str, list[float]] = {d: [] for d in observers}
    last = 0.0
    for i, row_id in enumerate(written.ids):
        at = {d: o.seen.get(row_id) for d, o in observers.items()}
        if any(v is None for v in at.values()):
            continue
        times = {d: float(v or 0.0) for d, v in at.items()}
        latest = max(times.values())
        visible.append((latest - written.commits[i]) * 1000)
        for d, v in times.items():
            per[d].append((v - written.commits[i]) * 1000)
        last = max(last, latest)
    n = len(written.commits)
    return Arrivals(visible, recorded, created_lat, per, last, len(visible), n - len(visible))


def settle(timeout: float = 120.0) -> None:
    """Wait until PARIS's outbox is empty: every echo is back, no backlog into the next run."""
    deadline = time.monotonic() + timeout
    while sql(db_of(WRITER), "SELECT count(*) FROM bridge_outbox")[0][0]:
        if time.monotonic() > deadline:
            raise Hiccup("PARIS's outbox did not drain")
        time.sleep(0.2)


def latency_summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 50), 2),
        "p90_ms": round(percentile(values, 90), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2) if values else float("nan"),
        "samples": len(values),
    }


def cpu_grouper(bridge_pids: dict[str, int]) -> Callable[[cpu.Proc, tuple[str, str] | None], str]:
    sites = {pid: site for site, pid in bridge_pids.items()}
    me = os.getpid()

    def group(proc: cpu.Proc, backend: tuple[str, str] | None) -> str:
        if proc.pid in sites:
            return (
                f"bridge {sites[proc.pid]} process"
                if proc.pid != me
                else "benchmark process (bridges in-process, writer, observers)"
            )
        if proc.pid == me:
            return "benchmark process (writer, observers)"
        if backend is not None and backend[0].startswith(E2E):
            site = backend[0].removeprefix(E2E).upper()
            if backend[1] == "bridge":
                return f"postgres backends of bridge {site}"
            return "postgres backends of the writer and observers"
        if proc.comm == "beam.smp" and "bridge-cluster/home " in proc.cmdline:
            return "rabbitmq cluster nodes"
        if proc.comm.startswith("haproxy"):
            return "haproxy"
        if proc.comm.startswith("postgres"):
            return "postgres, other (wal writer, checkpointer, other databases)"
        return "other processes (not the benchmark)"

    return group


# -- the broker floor ---------------------------------------------------------------------------


def probe_queues() -> list[str]:
    return [f"{PROBE_EXCHANGE}.{d}" for d in DESTINATIONS]


def probe_setup(broker: Broker) -> None:
    with broker.admin() as ch:
        ch.exchange_declare(PROBE_EXCHANGE, exchange_type="fanout", durable=True)
        for q in probe_queues():
            ch.queue_delete(q)
            ch.queue_declare(
                q,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-single-active-consumer": True,
                    "x-delivery-limit": DELIVERY_LIMIT,
                },
            )
            ch.queue_bind(q, PROBE_EXCHANGE)


def probe_teardown(broker: Broker) -> None:
    with broker.admin() as ch:
        for q in probe_queues():
            ch.queue_delete(q)
        ch.exchange_delete(PROBE_EXCHANGE)


def probe(broker: Broker, body: bytes, rate: float, n: int) -> dict[str, Any]:
    """Publish n messages at `rate`/s; latency = last of the three deliveries - publish."""
    sent: list[float] = [0.0] * n
    received: dict[str, dict[int, float]] = {q: {} for q in probe_queues()}
    ready = threading.Barrier(len(received) + 1)
    done = threading.Event()
    errors: list[BaseException] = []

    def consume(queue: str) -> None:
        got = received[queue]
        try:
            conn = pika.BlockingConnection(pika.URLParameters(broker.admin_url()))
            ch = conn.channel()
            ch.basic_qos(prefetch_count=200)

            def on_message(c: Any, method: Any, props: Any, _body: bytes) -> None:
                got[int(props.message_id)] = time.perf_counter()
                c.basic_ack(method.delivery_tag)

            ch.basic_consume(queue, on_message)
            ready.wait()
            while not done.is_set() and len(got) < n:
                conn.process_data_events(time_limit=0.05)
            conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=consume, args=(q,), daemon=True) for q in received]
    for t in threads:
        t.start()
    conn = pika.BlockingConnection(pika.URLParameters(broker.admin_url()))
    try:
        ch = conn.channel()
        ready.wait()
        t0 = time.perf_counter()
        for i in range(n):
            ahead = t0 + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            props = pika.BasicProperties(
                message_id=str(i),
                content_type="application/json",
                type="orders.insert",
                delivery_mode=pika.DeliveryMode.Persistent,
                app_id="bench",
                user_id="admin",
            )
            sent[i] = time.perf_counter()
            ch.basic_publish(PROBE_EXCHANGE, "", body, props)
    finally:
        conn.close()
    deadline = time.monotonic() + 30
    while any(len(r) < n for r in received.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    done.set()
    for t in threads:
        t.join(10)
    if errors:
        raise errors[0]
    lat = [
        (max(r[i] for r in received.values()) - sent[i]) * 1000
        for i in range(n)
        if all(i in r for r in received.values())
    ]
    return {**latency_summary(lat), "missing": n - len(lat), "all_ms": lat}


# -- the benchmark ------------------------------------------------------------------------------


@dataclass
class Plan:
    rounds: int
    throughput_events: int
    latency_rate: float
    latency_seconds: float
    probe_seconds: float
    rows_per_tx: int
    profile: bool
    next_id: int = 1_000_000

    def ids(self, n: int) -> int:
        first = self.next_id
        self.next_id += n
        return first


def guarded(bridges: Bridges, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """run(), or Hiccup if a bridge reconnected meanwhile (a node restarted under it)."""
    before = bridges.disturbances()
    out = run()
    bridges.check()
    if bridges.disturbances() != before:
        raise Hiccup("a bridge reconnected to the broker during the run")
    return out


def throughput_run(
    plan: Plan, bridges: Bridges, observers: dict[str, Observer], profile_dir: Path | None
) -> dict[str, Any]:
    n = plan.throughput_events
    since = time.time() - 0.5
    spies = profiling.start(bridges.pids(), 4 + n / 400, profile_dir, "throughput")
    before, t0 = cpu.snapshot(), time.perf_counter()
    w = write(db_of(WRITER), plan.ids(n), n, None, plan.rows_per_tx)
    counts = wait_arrived(w, observers, 60 + n / 50)
    after, t1 = cpu.snapshot(), time.perf_counter()
    a = arrivals(w, observers, since)
    span = a.last_visible - w.commits[0] if a.complete else float("nan")
    usage = cpu.usage(before, after, cpu_grouper(bridges.pids()), t1 - t0, a.complete)
    profiling.finish(spies)
    settle()
    return {
        "writer_per_s": round(w.rate, 1),
        "e2e_per_s": round(a.complete / span, 1),
        "e2e_seconds": round(span, 3),
        "complete": a.complete,
        "missing": a.missing,
        "visible_counts": counts,
        "latency_under_load": latency_summary(a.visible_ms),
        "cpu": usage,
    }


def throughput_pair(
    plan: Plan, r: int, bridges: Bridges, observers: dict[str, Observer]
) -> dict[str, Any]:
    n = plan.throughput_events
    out: dict[str, Any] = {}
    for kind in rounds_order(r):
        if kind == "baseline":
            sql(SOLO_DB, "TRUNCATE bridge_outbox")
            w = write(SOLO_DB, plan.ids(n), n, None, plan.rows_per_tx)
            out["solo_writer_per_s"] = round(w.rate, 1)
        else:
            out.update(guarded(bridges, partial(throughput_run, plan, bridges, observers, None)))
    out["ratio"] = round(out["e2e_per_s"] / out["solo_writer_per_s"], 4)
    return out


def latency_run(
    plan: Plan, bridges: Bridges, observers: dict[str, Observer], profile_dir: Path | None
) -> dict[str, Any]:
    rate = plan.latency_rate
    n = int(rate * plan.latency_seconds)
    since = time.time() - 0.5
    spies = profiling.start(bridges.pids(), plan.latency_seconds, profile_dir, "latency", idle=True)
    w = write(db_of(WRITER), plan.ids(n), n, rate)
    counts = wait_arrived(w, observers, 60)
    profiling.finish(spies)
    a = arrivals(w, observers, since)
    settle()
    return {
        **latency_summary(a.visible_ms),
        "achieved_rate": round(w.rate, 1),
        "writer_max_lag_ms": round(w.max_lag_s * 1000, 1),
        "missing": a.missing,
        "visible_counts": counts,
        "per_destination": {d: latency_summary(v) for d, v in a.per_destination_ms.items()},
        "recorded_by_bridge": latency_summary(a.recorded_ms),
        "recorded_from_outbox_created_at": latency_summary(a.from_created_ms),
        "_all_ms": a.visible_ms,
    }


def latency_pair(
    plan: Plan,
    r: int,
    broker: Broker,
    sample_body: bytes,
    bridges: Bridges,
    observers: dict[str, Observer],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in rounds_order(r + 1):
        if kind == "baseline":
            pr = probe(
                broker, sample_body, plan.latency_rate, int(plan.latency_rate * plan.probe_seconds)
            )
            out["broker_floor"] = {k: v for k, v in pr.items() if k != "all_ms"}
        else:
            out["bridge"] = guarded(bridges, partial(latency_run, plan, bridges, observers, None))
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument(
        "--in-process", action="store_true", help="run the three bridges as threads of this process"
    )
    p.add_argument("--events", type=int, default=None, help="events of a throughput run")
    p.add_argument("--rate", type=float, default=200.0, help="events/s of the latency run")
    p.add_argument(
        "--rows-per-tx",
        type=int,
        default=1,
        help="rows per writer transaction (one INSERT) in the throughput runs; the latency "
        "runs stay single-row. Results in end_to_end_txN.* for N > 1",
    )
    p.add_argument("--seconds", type=float, default=None, help="length of a latency run")
    p.add_argument(
        "--acks",
        choices=("direct", "topic", "off"),
        default=None,
        help="the bridges' acks mode (default: bridge's, direct); results in "
        "end_to_end_acks_<mode>.* when given",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after the rounds, one more throughput and latency run with py-spy "
        "sampling the bridge processes (bench/results/profile/)",
    )
    p.add_argument(
        "--metrics",
        action="store_true",
        help="every bridge serves /metrics on a free 127.0.0.1 port (metrics_address) and "
        f"the benchmark scrapes each every {SCRAPE_INTERVAL_S:.0f} s for the whole run; "
        "results in end_to_end_metrics.*",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="the bridges connect with amqps:// to --amqps-host-port with the cluster's CA "
        "as tls_ca_file; results in end_to_end_tls.*",
    )
    p.add_argument(
        "--results-name",
        default=None,
        help="name of the result files (default end_to_end, with suffixes for --rows-per-tx, "
        "--acks, --metrics, --tls)",
    )
    p.add_argument(
        "--amqps-host-port",
        default=AMQPS_HOST_PORT,
        help=f"the cluster's TLS port for --tls (default: HAProxy, {AMQPS_HOST_PORT})",
    )
    args = p.parse_args(argv)
    quick: bool = args.quick
    plan = Plan(
        rounds=args.rounds or (2 if quick else 4),
        throughput_events=args.events or (2000 if quick else 5000),
        latency_rate=args.rate,
        latency_seconds=args.seconds or (8.0 if quick else 20.0),
        probe_seconds=4.0 if quick else 10.0,
        rows_per_tx=args.rows_per_tx,
        profile=args.profile,
    )
    broker = Broker(args.vhost, args.amqp_host_port, args.amqps_host_port)
    broker.ensure_ready()
    settings: dict[str, Any] = {**DEFAULTS, **({"acks": args.acks} if args.acks else {})}
    metrics_at = (
        {s: f"127.0.0.1:{port}" for s, port in zip(SITES, free_ports(len(SITES)), strict=True)}
        if args.metrics
        else {}
    )
    if args.tls:
        settings["tls_ca_file"] = broker.tls_ca_file()
    configs = {
        s: make_config(
            s,
            db_of(s),
            amqp_url=broker.site_tls_url(s) if args.tls else broker.site_url(s),
            metrics_address=metrics_at.get(s, ""),
            **settings,
        )
        for s in SITES
    }
    scraper = Scraper(metrics_at, SCRAPE_INTERVAL_S) if args.metrics else None
    workdir = Path(tempfile.mkdtemp(prefix="bench_e2e_"))
    bridges: SubprocessBridges | ThreadBridges = (
        ThreadBridges(configs) if args.in_process else SubprocessBridges(configs, workdir)
    )
    params = {
        "rounds": plan.rounds,
        "bridges": bridges.mode,
        "writer": "1 connection at PARIS, autocommit single-row INSERT"
        + (
            f" (throughput runs: {args.rows_per_tx}-row INSERT transactions)"
            if args.rows_per_tx > 1
            else ""
        ),
        "throughput_events": plan.throughput_events,
        "latency_rate_per_s": plan.latency_rate,
        "latency_seconds": plan.latency_seconds,
        "probe_seconds": plan.probe_seconds,
        "bridge_settings": "bridge.config.Config defaults (batch_size 500, max_in_flight "
        f"1000, prefetch 200, poll_interval {Config.poll_interval}s, acks "
        f"{args.acks or Config.acks})",
        "broker_connection": (
            f"amqps:// through {args.amqps_host_port}, tls_ca_file {settings['tls_ca_file']}"
            if args.tls
            else f"amqp:// through {args.amqp_host_port}"
        ),
        "metrics": (
            f"metrics_address on each bridge, /metrics of each scraped every "
            f"{SCRAPE_INTERVAL_S:.0f} s"
            if args.metrics
            else "off (no metrics_address)"
        ),
    }
    result = header(NAME, quick, broker, params)
    started = time.perf_counter()
    log(f"end to end: creating databases and queues; bridges {bridges.mode}")
    for site in SITES:
        create_site_db(db_of(site))
        setup_site(configs[site])
    create_site_db(SOLO_DB)
    setup_site(make_config(WRITER, SOLO_DB))
    observers = {d: Observer(d) for d in DESTINATIONS}
    for d in DESTINATIONS:
        install_observer(d)
        observers[d].start()
    broker.fresh_topology()
    probe_setup(broker)
    profile_dir = ROOT / "bench" / "results" / "profile" if plan.profile else None
    raw: list[dict[str, Any]] = []
    discarded: list[str] = []
    pooled: list[float] = []
    try:
        bridges.start()
        wait_ready(bridges, broker)
        if scraper is not None:
            scraper.start()
        log("bridges ready; warming up")
        warm = write(db_of(WRITER), plan.ids(200), 200, plan.latency_rate)
        wait_arrived(warm, observers, 60)
        settle()
        sample_body = json.dumps(
            sql(db_of(WRITER), "SELECT event FROM bridge_archive LIMIT 1")[0][0],
            separators=(",", ":"),
        ).encode()
        params["event_bytes"] = len(sample_body)
        for r in range(plan.rounds):
            tp = attempt(
                f"round {r + 1} throughput",
                partial(throughput_pair, plan, r, bridges, observers),
                broker,
                discarded,
            )
            lt = attempt(
                f"round {r + 1} latency",
                partial(latency_pair, plan, r, broker, sample_body, bridges, observers),
                broker,
                discarded,
            )
            pooled += lt["bridge"].pop("_all_ms")
            raw.append({"round": r + 1, "throughput": tp, "latency": lt})
            b, f = lt["bridge"], lt["broker_floor"]
            log(
                f"e2e round {r + 1}/{plan.rounds}: {tp['e2e_per_s']:.0f} events/s end to end "
                f"(writer alone {tp['solo_writer_per_s']:.0f}/s, with bridge "
                f"{tp['writer_per_s']:.0f}/s); at {plan.latency_rate:.0f}/s p50 "
                f"{b['p50_ms']:.1f} ms p99 {b['p99_ms']:.1f} ms (broker floor p50 "
                f"{f['p50_ms']:.1f} p99 {f['p99_ms']:.1f})"
            )
        if profile_dir is not None:  # an extra pair of runs under py-spy, not in the medians
            log(f"profiling the bridges with py-spy into {profile_dir.relative_to(ROOT)}")
            profiled = {
                "throughput": throughput_run(plan, bridges, observers, profile_dir),
                "latency": latency_run(plan, bridges, observers, profile_dir),
            }
            profiled["latency"].pop("_all_ms")
            result["profiled_runs_not_in_medians"] = profiled
    finally:
        if scraper is not None:
            scraper.stop()
            result["metrics_scrapes"] = scraper.summary()
        bridges.stop()
        for o in observers.values():
            o.close()
        result["bridge_logs_tail"] = bridges.log_tail()
        shutil.rmtree(workdir, ignore_errors=True)
        probe_teardown(broker)
        broker.teardown()
        for db in [*(db_of(s) for s in SITES), SOLO_DB]:
            drop_db(db)

    def med(path: Sequence[str]) -> float:
        values = []
        for e in raw:
            v: Any = e
            for k in path:
                v = v[k]
            values.append(float(v))
        return median(values)

    p50, p99 = med(("latency", "bridge", "p50_ms")), med(("latency", "bridge", "p99_ms"))
    result["rounds"] = raw
    result["discarded_attempts"] = discarded
    result["medians"] = {
        "e2e_per_s": med(("throughput", "e2e_per_s")),
        "solo_writer_per_s": med(("throughput", "solo_writer_per_s")),
        "writer_per_s_with_bridge": med(("throughput", "writer_per_s")),
        "throughput_ratio": med(("throughput", "ratio")),
        "latency_p50_ms": p50,
        "latency_p99_ms": p99,
        "recorded_by_bridge_p50_ms": med(("latency", "bridge", "recorded_by_bridge", "p50_ms")),
        "recorded_by_bridge_p99_ms": med(("latency", "bridge", "recorded_by_bridge", "p99_ms")),
        "broker_floor_p50_ms": med(("latency", "broker_floor", "p50_ms")),
        "broker_floor_p99_ms": med(("latency", "broker_floor", "p99_ms")),
    }
    result["results"] = {
        "throughput": {
            "e2e_per_s": result["medians"]["e2e_per_s"],
            "ratio_to_writer_alone": result["medians"]["throughput_ratio"],
            "target": "none set (reported)",
        },
        "latency_p50": {
            "ms": p50,
            "target": f"< {TARGET_P50_MS:.0f} ms",
            "verdict": verdict(p50, TARGET_P50_MS, higher_is_better=False),
            "ratio_to_broker_floor": round(p50 / result["medians"]["broker_floor_p50_ms"], 2),
        },
        "latency_p99": {
            "ms": p99,
            "target": f"< {TARGET_P99_MS:.0f} ms",
            "verdict": verdict(p99, TARGET_P99_MS, higher_is_better=False),
            "ratio_to_broker_floor": round(p99 / result["medians"]["broker_floor_p99_ms"], 2),
        },
        "latency_pooled_all_rounds": latency_summary(pooled),
    }
    if profile_dir is not None:
        result["profiles"] = sorted(str(x.relative_to(ROOT)) for x in profile_dir.glob("*.md"))
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    name = NAME if plan.rows_per_tx == 1 else f"{NAME}_tx{plan.rows_per_tx}"
    if args.acks:
        name += f"_acks_{args.acks}"
    if args.metrics:
        name += "_metrics"
    if args.tls:
        name += "_tls"
    write_results(args.results_name or name, result, markdown(result))
    return result


def cpu_table(rounds: Sequence[dict[str, Any]]) -> list[list[str]]:
    """CPU per group summed over the rounds' throughput runs."""
    cpu_s: dict[str, float] = {}
    capacity = events = busy = 0.0
    for e in rounds:
        usage = e["throughput"]["cpu"]
        capacity += usage["cpu_capacity_s"]
        busy += usage.get("machine_busy_s", float("nan"))
        events += e["throughput"]["complete"]
        for g, v in usage["groups"].items():
            cpu_s[g] = cpu_s.get(g, 0.0) + v["cpu_s"]
    if not capacity or not events:
        return []
    cpu_s["(whole machine busy, /proc/stat)"] = busy
    return [
        [g, fmt(s, 2), f"{100 * s / capacity:.1f}%", fmt(s * 1e6 / events, 0)]
        for g, s in sorted(cpu_s.items(), key=lambda kv: -kv[1])
    ]


def markdown(result: dict[str, Any]) -> str:
    m, res, prm = result["medians"], result["results"], result["parameters"]
    lines = md_header(result, "End to end: commit at PARIS -> LONDON + MADRID + archive")
    lines += [
        f"Bridges: {prm['bridges']}. Writer: {prm['writer']}. Event size "
        f"{prm.get('event_bytes', '?')} bytes. Medians over rounds. Latency = latest of the "
        "three commits that make the row visible (LONDON, MADRID, PARIS archive; seen by "
        "LISTEN on a NOTIFY trigger the benchmark adds) minus the writer's commit time. "
        f"Broker connection: {prm.get('broker_connection', 'amqp://')}. Metrics: "
        f"{prm.get('metrics', 'off')}.",
        "",
    ]
    lines += table(
        ["figure", "bridge", "baseline", "ratio", "target", "verdict"],
        [
            [
                "throughput, events/s",
                fmt(m["e2e_per_s"]),
                f"{fmt(m['solo_writer_per_s'])} (writer alone)",
                fmt(m["throughput_ratio"], 3),
                res["throughput"]["target"],
                "",
            ],
            [
                f"latency p50 at {prm['latency_rate_per_s']:.0f}/s",
                f"{fmt(m['latency_p50_ms'], 1)} ms",
                f"{fmt(m['broker_floor_p50_ms'], 1)} ms (broker floor)",
                fmt(res["latency_p50"]["ratio_to_broker_floor"], 1),
                res["latency_p50"]["target"],
                res["latency_p50"]["verdict"],
            ],
            [
                f"latency p99 at {prm['latency_rate_per_s']:.0f}/s",
                f"{fmt(m['latency_p99_ms'], 1)} ms",
                f"{fmt(m['broker_floor_p99_ms'], 1)} ms (broker floor)",
                fmt(res["latency_p99"]["ratio_to_broker_floor"], 1),
                res["latency_p99"]["target"],
                res["latency_p99"]["verdict"],
            ],
        ],
    )
    pooled = res["latency_pooled_all_rounds"]
    lines += [
        "",
        f"All latency samples pooled: p50 {fmt(pooled['p50_ms'], 1)} ms, p90 "
        f"{fmt(pooled['p90_ms'], 1)} ms, p99 {fmt(pooled['p99_ms'], 1)} ms, max "
        f"{fmt(pooled['max_ms'], 1)} ms over {pooled['samples']} events. From bridge's own "
        f"timestamps (applied_at / archived_at): p50 {fmt(m['recorded_by_bridge_p50_ms'], 1)}"
        f" ms, p99 {fmt(m['recorded_by_bridge_p99_ms'], 1)} ms.",
        "",
        "Rounds:",
        "",
    ]
    rows = []
    for e in result["rounds"]:
        tp, b, f = e["throughput"], e["latency"]["bridge"], e["latency"]["broker_floor"]
        dest = " / ".join(fmt(b["per_destination"][d]["p50_ms"], 1) for d in DESTINATIONS)
        rows.append(
            [
                e["round"],
                fmt(tp["e2e_per_s"]),
                fmt(tp["solo_writer_per_s"]),
                fmt(tp["writer_per_s"]),
                fmt(tp["ratio"], 3),
                fmt(b["p50_ms"], 1),
                fmt(b["p99_ms"], 1),
                dest,
                fmt(f["p50_ms"], 1),
                fmt(f["p99_ms"], 1),
            ]
        )
    lines += table(
        [
            "round",
            "e2e ev/s",
            "writer alone/s",
            "writer w/ bridge/s",
            "ratio",
            "p50 ms",
            "p99 ms",
            "p50 LON/MAD/ARCH ms",
            "floor p50",
            "floor p99",
        ],
        rows,
    )
    lines += [
        "",
        "CPU during the throughput runs (all rounds; the machine has "
        f"{result['machine']['nproc']} CPUs):",
        "",
    ]
    lines += table(
        ["process group", "CPU s", "share of machine", "CPU ms / 1000 events"],
        cpu_table(result["rounds"]),
    )
    scrapes = result.get("metrics_scrapes")
    if scrapes:
        lines += [
            "",
            f"Metrics scraped every {scrapes['interval_s']:.0f} s for {scrapes['seconds']:.0f} "
            f"s: {scrapes['scrapes']} scrapes, {scrapes['failures']} failed.",
            "",
        ]
        lines += table(
            ["bridge", "address", "scrapes", "failed", "p50 ms", "max ms", "bytes", "last error"],
            [
                [
                    site,
                    v["address"],
                    v["scrapes"],
                    v["failures"],
                    fmt(v["p50_ms"], 1),
                    fmt(v["max_ms"], 1),
                    v["body_bytes"],
                    v["last_error"] or "",
                ]
                for site, v in scrapes["per_site"].items()
            ],
        )
    if result.get("discarded_attempts"):
        lines += ["", "Discarded attempts (disturbed from outside, redone):", ""]
        lines += [f"- {d}" for d in result["discarded_attempts"]]
    if result.get("profiles"):
        lines += [
            "",
            "Profiles (py-spy, an extra run after the rounds): " + ", ".join(result["profiles"]),
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
