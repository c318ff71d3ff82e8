"""What the fault tests share: bridges as real processes (so they can be killed with
SIGKILL), an audit of every write each site's `orders` receives, the tally every fault
test prints and checks, and a TCP proxy that partitions one site from the broker.

Processes are only ever signalled by the pid this module started.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, overload

import pika

from bridge import verify
from bridge.config import Config
from tests.conftest import AMQP_ADMIN, converged, db_of, env_of, sql, wait_for
from tests.faults.tally import Tally, install_audit, tally

__all__ = [
    "BridgeProcess",
    "Proxy",
    "Tally",
    "count",
    "depth",
    "finish",
    "install_audit",
    "processes",
    "tally",
]

# -- bridges as processes ---------------------------------------------------------------

DUPLICATES = re.compile(r"(\d+) duplicate\(s\) skipped")
FAILPOINT = re.compile(r"failpoint (\S+): kill -9")


class BridgeProcess:
    """`python -m bridge run` for one site; every (re)start is a new incarnation with its
    own log file under `logdir`."""

    def __init__(self, cfg: Config, logdir: Path, **settings: Any) -> None:
        self.cfg = cfg
        self.logdir = logdir
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.kills = 0  # SIGKILLs sent by the test

    @property
    def site(self) -> str:
        return self.cfg.site

    def start(self, failpoints: str = "", seed: int | None = None, **settings: Any) -> None:
        assert not self.alive(), f"{self.site}: already running"
        env = env_of(self.cfg, **{**self.settings, **settings})
        if failpoints:
            env["BRIDGE_FAILPOINTS"] = failpoints
            if seed is not None:
                env["BRIDGE_FAILPOINTS_SEED"] = str(seed)
        log = self.logdir / f"{self.site}.{len(self.logs) + 1}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.logdir,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.site} bridge not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.logs[-1].read_text(errors="replace") if self.logs else ""

    def ready(self) -> bool:
        text = self.log_text()
        return "dispatcher ready" in text and f"consuming {self.cfg.queue}" in text

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: self.ready() or not self.alive(), timeout, f"{self.site} bridge ready")
        assert self.alive(), f"{self.site} bridge exited:\n{self.log_text()[-3000:]}"

    def kill(self) -> None:
        """kill -9, by the pid we started."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
            self.kills += 1

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def all_logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs)

    def duplicates_skipped(self) -> int:
        return sum(int(n) for n in DUPLICATES.findall(self.all_logs()))

    def failpoint_kills(self) -> Counter[str]:
        return Counter(FAILPOINT.findall(self.all_logs()))


@contextlib.contextmanager
def processes(
    cfgs: Iterable[Config], logdir: Path, **settings: Any
) -> Iterator[dict[str, BridgeProcess]]:
    """One bridge process per site, started and ready; killed at the end whatever happens."""
    procs = {c.site: BridgeProcess(c, logdir, **settings) for c in cfgs}
    try:
        for p in procs.values():
            p.start()
        for p in procs.values():
            p.wait_ready()
        yield procs
    finally:
        for p in procs.values():
            if p.alive():
                p.kill()


# -- the tally: tests/faults/tally.py -----------------------------------------------------

# -- a site's own road to the broker, that the test can cut -----------------------------


class Proxy:
    """A TCP forwarder 127.0.0.1:<port> -> target. `cut()` partitions: every connection is
    closed and new ones are refused until `heal()`; `blackhole()` keeps the connections but
    forwards nothing (a silent partition, found only by heartbeats)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.state = "open"  # open | cut | blackhole
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, amqp_url: str) -> str:
        """`amqp_url` with its host:port replaced by this proxy's."""
        return re.sub(r"@[^/]+/", f"@127.0.0.1:{self.port}/", amqp_url, count=1)

    def _accept(self) -> None:
        while not self.closed.is_set():
            ready, _, _ = select.select([self.listener], [], [], 0.2)
            if not ready:
                continue
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.state == "cut":
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while not self.closed.is_set():
                if self.state == "blackhole":
                    self.closed.wait(0.05)
                    continue
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):  # closed under us by cut(): ValueError on fd -1
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()
            with self.lock:
                if (a, b) in self.pairs:
                    self.pairs.remove((a, b))

    def _drop_all(self) -> None:
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        self.state = "cut"
        self._drop_all()

    def blackhole(self) -> None:
        self.state = "blackhole"

    def heal(self) -> None:
        if self.state == "blackhole":
            self._drop_all()  # what was held is stale: both ends have given up on it
        self.state = "open"

    def close(self) -> None:
        self.closed.set()
        self._drop_all()
        self.listener.close()
        self.thread.join(5)


# -- waiting for the end state ----------------------------------------------------------


def finish(
    cfgs: list[Config], procs: Mapping[str, BridgeProcess], writers: list[Any], what: str
) -> Tally:
    """Stop the writers, wait until every change is everywhere, then print the tally and
    check it: nothing lost, nothing applied twice, no bridge gave up, verify clean."""
    for w in writers:
        w.stop.set()
        w.join(60)
    events = sum(w.events for w in writers)
    try:
        settle(cfgs, sum(len(w.written) for w in writers), events)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{sessions(cfgs)}\n{troubles(procs)}") from None
    assert all(p.alive() for p in procs.values()), "a bridge gave up"
    t = tally(cfgs, events, procs)
    print(f"\n{what}; {t.line()}")
    t.check()
    _, differing = verify.verify(cfgs[0], {c.site: c.database_url for c in cfgs[1:]})
    assert differing == []
    return t


def sessions(cfgs: list[Config]) -> str:
    """The sites' database sessions that are not idle: who waits for what."""
    rows = sql(
        "postgres",
        "SELECT datname, pid, application_name, state, wait_event_type, wait_event,"
        " pg_blocking_pids(pid), now() - xact_start, left(query, 120)"
        " FROM pg_stat_activity WHERE datname = ANY(%s) AND state <> 'idle' ORDER BY 1, 2",
        [db_of(c) for c in cfgs],
    )
    return "sessions not idle:\n" + "\n".join(f"    {r}" for r in rows)


def troubles(procs: Mapping[str, BridgeProcess], lines: int = 30) -> str:
    """Per bridge: alive or not, the last errors its logs hold, and (asked with SIGUSR1,
    by the pid this module started) the stack of each of its threads."""
    out = []
    for site, p in procs.items():
        errors = [
            line
            for line in p.all_logs().splitlines()
            if " ERROR " in line or " CRITICAL " in line or "Traceback" in line
        ]
        out.append(f"{site} bridge {'alive' if p.alive() else 'EXITED'}; last errors:")
        out += [f"    {line}" for line in errors[-lines:]]
        if p.alive():
            before = len(p.log_text())
            os.kill(p.pid, signal.SIGUSR1)
            with contextlib.suppress(AssertionError):
                wait_for(lambda p=p, n=before: "File " in p.log_text()[n:], 10, "a stack dump")
            out.append(f"{site} bridge threads:\n{p.log_text()[before:]}")
    return "\n".join(out)


@overload
def depth(queue: str) -> int: ...
@overload
def depth(queue: str, consumers: Literal[True]) -> tuple[int, int]: ...
def depth(queue: str, consumers: bool = False) -> int | tuple[int, int]:
    """Messages ready in a queue (the tests' vhost), as the broker counts them; with
    `consumers`, also how many consumers it has."""
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
    try:
        method = conn.channel().queue_declare(queue, passive=True).method
        n: int = method.message_count
        return (n, method.consumer_count) if consumers else n
    finally:
        conn.close()


def count(cfg: Config, table: str = "orders") -> int:
    n: int = sql(db_of(cfg), f"SELECT count(*) FROM {table}")[0][0]
    return n


def settle(cfgs: list[Config], rows: int | None, events: int, timeout: float = 300) -> None:
    """Wait until every site holds `rows` rows (if given), all sites the same ones, every
    outbox is empty (each event came back to its origin) and the archive holds `events`
    events. On a timeout the error says where each site stands."""
    try:
        _settle(cfgs, rows, events, timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{standing(cfgs)}") from None


def standing(cfgs: list[Config]) -> str:
    """One line per site: rows, outbox (unpublished), inbox, conflicts, waiting, queue and
    dead-letter depths: what a stuck settle needs to say."""
    lines = []
    for c in cfgs:
        try:
            (r,) = sql(
                db_of(c),
                "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM bridge_outbox),"
                " (SELECT count(*) FROM bridge_outbox WHERE published_at IS NULL),"
                " (SELECT count(*) FROM bridge_inbox),"
                " (SELECT count(*) FROM bridge_conflicts),"
                " (SELECT count(*) FROM bridge_waiting)",
            )
            q, consumers = depth(c.queue, consumers=True)
            dlq = depth(f"{c.queue}.dlq")
        except Exception as e:  # the point is to say something, whatever is broken
            lines.append(f"  {c.site}: {e}")
            continue
        lines.append(
            f"  {c.site}: rows {r[0]}, outbox {r[1]} ({r[2]} unpublished), inbox {r[3]},"
            f" conflicts {r[4]}, waiting {r[5]}, queue {q} ({consumers} consumers),"
            f" dead letters {dlq}"
        )
    return "\n".join(lines)


def _settle(cfgs: list[Config], rows: int | None, events: int, timeout: float) -> None:
    archive = next(c for c in cfgs if c.is_archive)
    if rows is not None:
        wait_for(
            lambda: all(count(c) == rows for c in cfgs),
            timeout,
            f"{rows} rows at every site",
            interval=0.5,
        )
    wait_for(
        lambda: all(count(c, "bridge_outbox") == 0 for c in cfgs),
        timeout,
        "every outbox drained (echoes back)",
        interval=0.5,
    )
    wait_for(
        lambda: count(archive, "bridge_archive") >= events,
        timeout,
        f"{events} events archived",
        interval=0.5,
    )
    wait_for(
        lambda: not unreceived(cfgs, archive),
        timeout,
        "every archived event received by every other site",
        interval=0.5,
    )
    wait_for(lambda: converged(cfgs), 60, "identical rows everywhere", interval=0.5)


def unreceived(cfgs: list[Config], archive: Config) -> dict[str, int]:
    """Per site, the other sites' archived events not in its inbox (yet)."""
    origins = dict(sql(db_of(archive), "SELECT event_id::text, origin FROM bridge_archive"))
    missing = {}
    for c in cfgs:
        inbox = {e for (e,) in sql(db_of(c), "SELECT event_id::text FROM bridge_inbox")}
        n = sum(1 for e, o in origins.items() if o != c.site and e not in inbox)
        if n:
            missing[c.site] = n
    return missing
