"""The backlog scenario of issue 12, shared by tests/faults/test_backlog.py (100,000 events)
and bench/backlog.py (1,000,000): two sites' applications write many events in large
transactions while the third site's bridge is stopped; the two must converge with each
other, with about one message published per event; then the third comes back and catches
up; `bridge verify` is the judge.

Before issue 12, a site republished every row whose echo had not come back within a minute:
with 100,000 events that was more than a million messages per queue, and two sites had not
converged after 15 minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import psycopg

from bridge import verify
from bridge.config import Config
from bridge.consumer import DRAIN_REPORT_EVERY
from bridge.dialects import for_url
from bridge.status import read as read_status
from tests.conftest import AMQP_ADMIN, db_of, sql, wait_for
from tests.faults.harness import BridgeProcess, processes


@dataclass
class BacklogResult:
    events: int  # captured, all sites
    written_seconds: float
    converge_seconds: float  # from the last commit to the two writing sites equal
    catch_up_seconds: float  # from the third site's start to every site equal
    sent: dict[str, int]  # outbox rows (events) published per site (bridge_meta 'dispatcher')
    republished: dict[str, int]
    peak_depth: dict[str, int]  # the most messages each queue held at once
    captured: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)  # AMQP messages that carried them
    verify_seconds: float = 0.0  # the `bridge verify` at the end
    peak_rss_mb: dict[str, float] = field(default_factory=dict)  # bridges, broker nodes
    broker: dict[str, dict[str, Any]] = field(default_factory=dict)  # per node: NodeWatch

    def lines(self) -> list[str]:
        total = sum(self.sent.values())
        return [
            f"events captured {self.events} ({self.captured}) in {self.written_seconds:.1f}s",
            f"events published {total} = {total / self.events:.4f} per event captured "
            f"(per site {self.sent}) in {sum(self.messages.values())} messages "
            f"({self.messages}), published again {self.republished}",
            f"queue depth at its peak {self.peak_depth}",
            f"the two writing sites equal {self.converge_seconds:.1f}s after the last commit",
            f"the returning site caught up in {self.catch_up_seconds:.1f}s "
            f"({self.events / self.catch_up_seconds:.0f} events/s)",
            f"bridge verify clean, in {self.verify_seconds:.1f}s",
            f"resident memory at its peak, MB {self.peak_rss_mb}",
            f"broker nodes (rabbitmqctl status) {self.broker}",
        ]


CLUSTER_DIR = Path(os.environ.get("BRIDGE_CLUSTER_DIR", "/var/tmp/bridge-cluster"))


def rss_mb(pid: int) -> float | None:
    """A process's resident memory (VmRSS), or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def broker_nodes() -> dict[str, int]:
    """The local cluster's nodes (scripts/cluster) by name: their pids, from its pid files."""
    pids = {}
    for n in (1, 2, 3):
        with contextlib.suppress(OSError, ValueError):
            pids[f"rabbit{n}"] = int((CLUSTER_DIR / f"rabbit{n}" / f"rabbit{n}.pid").read_text())
    return pids


REPO = Path(__file__).resolve().parents[1]
REPORT_EVERY = 60.0  # seconds between two progress lines of a watched run
NODE_EVERY = 10.0  # seconds between two `rabbitmqctl status` of each node (each costs ~0.7 s CPU)


def dir_mb(path: Path) -> float:
    """The size of the files under `path`, in MB (a queue's segments come and go: skip those)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total / 2**20


@dataclass
class NodeWatch:
    """What `rabbitmqctl status` and the node's data directory say over a run, at their worst."""

    peak_memory_mb: float = 0.0  # the node's own memory figure (strategy rss)
    high_watermark_mb: float = 0.0  # where the node blocks publishers
    peak_data_mb: float = 0.0  # its data directory (quorum queue logs and segments)
    min_disk_free_mb: float = float("inf")
    alarms: list[str] = field(default_factory=list)

    def sample(self, n: int) -> None:
        out = subprocess.run(
            [str(REPO / "scripts" / "cluster"), "node-status", str(n)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            return  # a node being restarted: the next sample will tell
        status = json.loads(out.stdout)
        mb = 2**20
        self.peak_memory_mb = max(self.peak_memory_mb, status["memory"]["total"]["rss"] / mb)
        self.high_watermark_mb = status["vm_memory_high_watermark_limit"] / mb
        self.min_disk_free_mb = min(self.min_disk_free_mb, status["disk_free"] / mb)
        for alarm in status.get("alarms", []):
            if str(alarm) not in self.alarms:
                self.alarms.append(str(alarm))
        self.peak_data_mb = max(self.peak_data_mb, dir_mb(CLUSTER_DIR / f"rabbit{n}" / "data"))

    def figures(self) -> dict[str, Any]:
        return {
            "peak_memory_mb": round(self.peak_memory_mb, 1),
            "high_watermark_mb": round(self.high_watermark_mb, 1),
            "peak_data_mb": round(self.peak_data_mb, 1),
            "min_disk_free_mb": round(self.min_disk_free_mb, 1),
            "alarms": self.alarms,
        }


class DepthWatch(threading.Thread):
    """Once a second: every queue's depth (passive declare), the resident memory of the
    bridges it is told of (`track`) and of the cluster's nodes; keeps the peaks."""

    def __init__(
        self, queues: list[str], admin_url: str, report: Callable[[str], Any] | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.report = report  # told the queues' depths once a minute, if given
        self.depth: dict[str, int] = {}
        self.queues = queues
        self.admin_url = admin_url
        self.peak = dict.fromkeys(queues, 0)
        self.peak_rss: dict[str, float] = {}
        self.pids: dict[str, int] = {}
        self.nodes: dict[str, NodeWatch] | None = None  # sampled only when asked (`watch_nodes`)
        self.stop = threading.Event()

    def watch_nodes(self) -> None:
        """Also sample each broker node's memory, watermark, disk and alarms (rabbitmqctl)."""
        self.nodes = {f"rabbit{n}": NodeWatch() for n in (1, 2, 3)}

    def track(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def run(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.admin_url))
        try:
            ch = conn.channel()
            next_nodes = 0.0
            next_report = time.monotonic() + REPORT_EVERY
            while not self.stop.wait(1.0):
                if self.nodes is not None and time.monotonic() >= next_nodes:
                    for i, node in enumerate(self.nodes.values(), 1):
                        node.sample(i)
                    next_nodes = time.monotonic() + NODE_EVERY
                for q in self.queues:
                    n = ch.queue_declare(q, passive=True).method.message_count
                    self.peak[q] = max(self.peak[q], n)
                    self.depth[q] = n
                if self.report is not None and time.monotonic() >= next_report:
                    next_report = time.monotonic() + REPORT_EVERY
                    self.report(f"queues {self.depth}, resident MB {self.peak_rss}")
                for name, pid in {**dict(self.pids), **broker_nodes()}.items():
                    mb = rss_mb(pid)
                    if mb is not None:
                        self.peak_rss[name] = max(self.peak_rss.get(name, 0.0), round(mb, 1))
        finally:
            conn.close()


def write(cfg: Config, events: int, per_tx: int) -> None:
    """`events` new rows, `per_tx` per transaction, as fast as the database takes them."""
    base = 10_000_000 * (1 + cfg.sites.index(cfg.site))
    with psycopg.connect(cfg.database_url, autocommit=True) as conn:
        for start in range(0, events, per_tx):
            n = min(per_tx, events - start)
            conn.execute(
                "INSERT INTO orders (id, customer, amount, updated_at) "
                "SELECT %s + i, %s, i, clock_timestamp() FROM generate_series(1, %s) AS i",
                (base + start, cfg.site, n),
            )


def counters(cfg: Config) -> dict[str, int]:
    dialect = for_url(cfg.database_url)
    with dialect.connect(cfg.database_url) as conn:
        return read_status(dialect, conn).dispatcher


def equal(a: Config, b: Config) -> bool:
    query = "SELECT count(*), sum(hashtext(id::text || customer)) FROM orders"
    return sql(db_of(a), query) == sql(db_of(b), query)


def outbox_empty(cfg: Config) -> bool:
    return sql(db_of(cfg), "SELECT count(*) FROM bridge_outbox")[0][0] == 0


def run(
    cfgs: list[Config],
    logdir: Path,
    events_per_site: int,
    per_tx: int = 250,
    timeout: float = 1800,
    progress: Callable[[str], Any] = print,
    admin_url: str = AMQP_ADMIN,
    watch_nodes: bool = False,
) -> BacklogResult:
    """PARIS and MADRID write while LONDON's bridge is stopped; then LONDON comes back."""
    by_site = {c.site: c for c in cfgs}
    paris, london, madrid = by_site["PARIS"], by_site["LONDON"], by_site["MADRID"]
    queues = [c.queue for c in cfgs] + [paris.archive_queue]
    watch = DepthWatch(queues, admin_url, progress if watch_nodes else None)
    if watch_nodes:
        watch.watch_nodes()
    watch.start()
    try:
        with processes([paris, madrid], logdir) as procs:
            for site, proc in procs.items():
                watch.track(f"bridge {site}", proc.pid)
            started = time.monotonic()
            threads = [
                threading.Thread(target=write, args=(c, events_per_site, per_tx))
                for c in (paris, madrid)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            written = time.monotonic() - started
            progress(f"{2 * events_per_site} events written in {written:.1f}s")
            wait_for(
                lambda: equal(paris, madrid) and outbox_empty(paris) and outbox_empty(madrid),
                timeout,
                "PARIS and MADRID equal, every echo back",
                interval=1,
            )
            converged = time.monotonic() - started - written
            progress(f"PARIS and MADRID equal after {converged:.1f}s")
            procs["LONDON"] = london_proc = BridgeProcess(london, logdir)
            back = time.monotonic()
            london_proc.start()
            watch.track("bridge LONDON", london_proc.pid)
            london_proc.wait_ready()
            wait_for(
                lambda: equal(london, paris) and equal(london, madrid),
                timeout,
                "LONDON caught up",
                interval=1,
            )
            caught_up = time.monotonic() - back
            progress(f"LONDON caught up in {caught_up:.1f}s")
            if caught_up > 2 * DRAIN_REPORT_EVERY:  # a long drain says how it goes
                assert "draining:" in london_proc.all_logs(), "no progress line while draining"
            for proc in procs.values():  # a clean stop adds the last counts to bridge_meta
                assert proc.terminate() == 0, proc.log_text()[-2000:]
    finally:
        watch.stop.set()
        watch.join(10)
    verified = time.monotonic()
    _, differing = verify.verify(paris, {c.site: c.database_url for c in (london, madrid)})
    assert differing == [], f"sites differ on {differing}"
    verified = time.monotonic() - verified
    meta = {c.site: counters(c) for c in (paris, madrid)}
    return BacklogResult(
        events=2 * events_per_site,
        written_seconds=written,
        converge_seconds=converged,
        catch_up_seconds=caught_up,
        sent={s: m.get("sent", 0) for s, m in meta.items()},
        messages={s: m.get("messages", 0) for s, m in meta.items()},
        verify_seconds=verified,
        republished={s: m.get("republished", 0) for s, m in meta.items()},
        peak_depth=watch.peak,
        captured={c.site: events_per_site for c in (paris, madrid)},
        peak_rss_mb=watch.peak_rss,
        broker={k: n.figures() for k, n in (watch.nodes or {}).items()},
    )
