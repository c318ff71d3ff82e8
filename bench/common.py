"""What the benchmarks share: the services (reusing tests/conftest.py), machine facts,
statistics and the result files.

The broker side runs in its own virtual host (`bridge_bench` by default) of the project's
3-node cluster: the benchmarks declare, purge and delete the topology there, so they never
touch the queues of the integration tests, which use the default vhost `/` and the same
queue names. The vhost and the site users' permissions on it are created on first use
through `scripts/cluster` (documented commands only) and are kept; the queues and
exchanges are deleted at the end of every benchmark.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import pika
import pika.exceptions
import psycopg

from bridge import topology
from bridge.broker import ACKS_EXCHANGE, DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE
from bridge.config import Config
from tests.conftest import ROOT, SITES, create_site_db, make_config, pg_url, setup_site, sql

# The administrator of the project's local cluster (scripts/cluster, .env.sample defaults);
# the benchmark puts its own vhost in the path.
AMQP_ADMIN = os.environ.get("BRIDGE_BENCH_AMQP_ADMIN", "amqp://admin:123456@127.0.0.1:5680/")
# The cluster's TLS port (HAProxy passing TLS through to the nodes) and the CA that signed
# the nodes' certificates (scripts/tls-ca, docs/cluster.md "TLS").
AMQPS_HOST_PORT = "127.0.0.1:5690"
TLS_CA_FILE = Path(
    os.environ.get(
        "BRIDGE_BENCH_TLS_CA_FILE",
        str(Path(os.environ.get("BRIDGE_CLUSTER_DIR", "/var/tmp/bridge-cluster")) / "tls/ca.crt"),
    )
)
T = TypeVar("T")
RESULTS = ROOT / "bench" / "results"
ARCHIVE_SITE = "PARIS"
DEFAULT_VHOST = "bridge_bench"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- command line ---------------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="short run (under about a minute)")
    p.add_argument("--rounds", type=int, default=None, help="rounds of baseline + subject")
    p.add_argument(
        "--vhost",
        default=DEFAULT_VHOST,
        help=f"RabbitMQ virtual host to run in (default {DEFAULT_VHOST}; '/' is where the "
        "integration tests declare the same queue names)",
    )
    p.add_argument(
        "--amqp-host-port",
        default="127.0.0.1:5680",
        help="where the site users connect (default: HAProxy in front of the 3 nodes)",
    )
    return p


# -- the broker ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    vhost: str = DEFAULT_VHOST
    host_port: str = "127.0.0.1:5680"
    tls_host_port: str = AMQPS_HOST_PORT

    @property
    def _path(self) -> str:
        return "" if self.vhost == "/" else urllib.parse.quote(self.vhost, safe="")

    def admin_url(self) -> str:
        parts = urllib.parse.urlsplit(AMQP_ADMIN)
        return urllib.parse.urlunsplit(parts._replace(path="/" + self._path))

    def site_url(self, site: str) -> str:
        """The site's broker user as scripts/cluster add-site-user makes it in the tests."""
        user = self.site_user(site)
        return f"amqp://{user}:{user}-secret@{self.host_port}/{self._path}"

    def site_tls_url(self, site: str) -> str:
        """The same user through the cluster's TLS port (amqps://; pair it with
        `tls_ca_file()` as the bridge's tls_ca_file)."""
        user = self.site_user(site)
        return f"amqps://{user}:{user}-secret@{self.tls_host_port}/{self._path}"

    def tls_ca_file(self) -> str:
        """The cluster's CA file, once it and the TLS port are there."""
        host, port = self.tls_host_port.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError:
            listening = False
        else:
            listening = True
        if not TLS_CA_FILE.is_file() or not listening:
            raise SystemExit(
                f"the cluster has no TLS (CA file {TLS_CA_FILE}: "
                f"{'there' if TLS_CA_FILE.is_file() else 'missing'}; {self.tls_host_port}: "
                f"{'listening' if listening else 'nothing listening'}): `sudo scripts/cluster "
                "start` adds it to a running cluster (docs/cluster.md, TLS), or set "
                "BRIDGE_BENCH_TLS_CA_FILE and --amqps-host-port"
            )
        return str(TLS_CA_FILE)

    def site_user(self, site: str) -> str:
        return site.lower()

    @contextmanager
    def admin(self) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
        conn = pika.BlockingConnection(pika.URLParameters(self.admin_url()))
        try:
            yield conn.channel()
        finally:
            if conn.is_open:
                conn.close()

    def queues(self) -> list[str]:
        return topology.queue_names(SITES, ARCHIVE_SITE)

    def ensure_ready(self) -> None:
        """Create the vhost and the site users' permissions on it if they are missing."""
        if not _can_connect(self.admin_url()):
            status = subprocess.run(
                [str(ROOT / "scripts" / "cluster"), "status"], capture_output=True, text=True
            )
            if status.returncode != 0:
                raise SystemExit(
                    "the RabbitMQ cluster is not fully up (scripts/cluster status):\n"
                    + status.stdout
                )
            log(f"creating vhost {self.vhost} (RABBITMQ_DEFAULT_VHOST=... scripts/cluster start)")
            self._cluster("start")
        for site in SITES:
            # every time: the permissions follow scripts/cluster as it is now (a user made
            # by an older one lacks what newer code publishes to: amq.default, bridge.replay)
            extra = ["--archive"] if site == ARCHIVE_SITE else []
            self._cluster("add-site-user", site, f"{site.lower()}-secret", *extra)

    def _cluster(self, *args: str) -> None:
        env = dict(os.environ, RABBITMQ_DEFAULT_VHOST=self.vhost)
        subprocess.run(
            [str(ROOT / "scripts" / "cluster"), *args], check=True, capture_output=True, env=env
        )

    def fresh_topology(self) -> None:
        """Delete the bridge queues of the vhost and declare them again, empty."""
        with self.admin() as ch:
            for q in self.queues():
                ch.queue_delete(q)
                ch.queue_delete(f"{q}.dlq")
            for q in topology.acks_queue_names(SITES):
                ch.queue_delete(q)
            topology.apply(ch, SITES, ARCHIVE_SITE)

    def purge(self) -> None:
        with self.admin() as ch:
            for q in self.queues():
                ch.queue_purge(q)

    def depths(self) -> dict[str, int]:
        with self.admin() as ch:
            return {
                q: int(ch.queue_declare(q, passive=True).method.message_count)
                for q in self.queues()
            }

    def teardown(self) -> None:
        """Delete every queue and exchange the benchmarks declared in the vhost."""
        with self.admin() as ch:
            for q in self.queues():
                ch.queue_delete(q)
                ch.queue_delete(f"{q}.dlq")
            for q in topology.acks_queue_names(SITES):
                ch.queue_delete(q)
            if self.vhost != "/":  # the default vhost's exchanges belong to the tests too
                ch.exchange_delete(EVENTS_EXCHANGE)
                ch.exchange_delete(DEAD_LETTER_EXCHANGE)
                ch.exchange_delete(ACKS_EXCHANGE)

    def version(self) -> str:
        conn = pika.BlockingConnection(pika.URLParameters(self.admin_url()))
        try:
            props = conn._impl.server_properties  # noqa: SLF001 - pika keeps them there
            return str(props.get("version", b"?"))
        finally:
            conn.close()

    def wait_up(self, timeout: float = 180.0) -> None:
        """Wait until the admin user can connect again (a node or HAProxy restarting)."""
        deadline = time.monotonic() + timeout
        while not _can_connect(self.admin_url()):
            if time.monotonic() > deadline:
                raise SystemExit(f"the broker did not come back within {timeout:.0f}s")
            time.sleep(1.0)


class Hiccup(Exception):
    """A run disturbed from outside the benchmark (a broker node restarted meanwhile)."""


def attempt(
    what: str, fn: Callable[[], T], broker: Broker, discarded: list[str], tries: int = 3
) -> T:
    """fn(), redone (up to `tries` times) if the broker went away during it; the reasons of
    discarded attempts are appended to `discarded` and end up in the results."""
    for n in range(1, tries + 1):
        try:
            return fn()
        except (Hiccup, pika.exceptions.AMQPError, ConnectionError) as exc:
            if n == tries:
                raise
            discarded.append(f"{what}: {exc!r}")
            log(f"{what} disturbed ({exc!r}); redoing it once the broker answers")
            broker.wait_up()
            time.sleep(2.0)
    raise AssertionError("unreachable")


def _can_connect(url: str) -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except pika.exceptions.AMQPError:
        return False
    return True


# -- databases ------------------------------------------------------------------------------


def site_configs(broker: Broker, prefix: str) -> list[Config]:
    """One fresh site database per site (`<prefix>_<site>`, `orders`, bridge initialised
    and capturing), configured for the benchmark's vhost; PARIS archives."""
    cfgs = []
    for site in SITES:
        db = f"{prefix}_{site.lower()}"
        create_site_db(db)
        cfg = make_config(site, db, amqp_url=broker.site_url(site), archive_site=ARCHIVE_SITE)
        setup_site(cfg)
        cfgs.append(cfg)
    return cfgs


def drop_db(db: str) -> None:
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def checkpoint() -> None:
    """Flush dirty pages now, so that no checkpoint falls into a timed run by chance."""
    sql("postgres", "CHECKPOINT")


def pg_facts() -> dict[str, str]:
    names = (
        "server_version",
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
        "shared_buffers",
        "max_wal_size",
    )
    return {n: str(sql("postgres", f"SHOW {n}")[0][0]) for n in names}


# -- facts, statistics, results ---------------------------------------------------------------


def git_facts() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def machine_facts(broker: Broker) -> dict[str, Any]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    versions = {}
    for pkg in ("pika", "psycopg"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "?"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": pg_facts(),
        "rabbitmq": broker.version(),
        "rabbitmq_cluster": "3 nodes (scripts/cluster) behind HAProxy, quorum queues",
        "amqp": f"{broker.host_port} vhost {broker.vhost}",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        **versions,
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def rounds_order(round_index: int) -> tuple[str, str]:
    """Baseline first in even rounds, subject first in odd ones (cancels drift)."""
    return ("baseline", "subject") if round_index % 2 == 0 else ("subject", "baseline")


def header(name: str, quick: bool, broker: Broker, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "benchmark": name,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "default",
        "git": git_facts(),
        "machine": machine_facts(broker),
        "parameters": parameters,
    }


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    if value != value:  # NaN
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "FAIL"


def ratio_result(ratio: float, subject: float, baseline: float, target: float) -> dict[str, Any]:
    """A ratio figure for the results: the median of per-round ratios, the ratio of the
    medians beside it, the target and the verdict."""
    return {
        "ratio": ratio,
        "ratio_of_medians": subject / baseline,
        "target": f">= {target}",
        "verdict": verdict(ratio, target),
    }


def write_results(name: str, result: dict[str, Any], markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    log(f"wrote {json_path.relative_to(ROOT)} and {md_path.relative_to(ROOT)}")


def md_header(result: dict[str, Any], title: str) -> list[str]:
    m = result["machine"]
    pg = m["postgresql"]
    commit = result["git"]["commit"] or "unknown"
    dirty = " (with uncommitted changes)" if result["git"]["dirty"] else ""
    params = ", ".join(f"{k}={v}" for k, v in result["parameters"].items())
    return [
        f"# {title}",
        "",
        f"- date: {result['date']} ({result['mode']} mode, {result['elapsed_s']:.0f} s)",
        f"- commit: {commit[:12]}{dirty}",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, load at start "
        f"{m['load_average_at_start']}; Python {m['python']}, pika {m['pika']}, "
        f"psycopg {m['psycopg']}",
        f"- PostgreSQL {pg['server_version']} (synchronous_commit={pg['synchronous_commit']}, "
        f"fsync={pg['fsync']}), RabbitMQ {m['rabbitmq']}: {m['rabbitmq_cluster']}",
        f"- parameters: {params}",
        "",
    ]


def fmt(value: float, digits: int = 0) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, this process's CPU seconds, result) of fn()."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out
