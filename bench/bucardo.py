"""Bridge next to Bucardo: the same two-master PostgreSQL workload, in one run.

Bucardo (Debian's package, 5.x) is the reference peer: trigger-based multi-master
replication between PostgreSQL databases, driven by a daemon. The benchmark installs it
when it is missing (`apt-get install -y bucardo postgresql-plperl-<server major>`), creates
its `bucardo` superuser role, its /var/run/bucardo and /var/log/bucardo directories and its
`bucardo` database (`bucardo install --batch`) if they are not there, and keeps them.

Databases (all dropped at the end):
- `bench_bucardo_plain`: `orders` (tests/conftest.py) and no trigger at all;
- `bench_bucardo_a` and `bench_bucardo_b`: one Bucardo sync between them, both sources
  (`bucardo add db`, `add table orders relgroup=...`, `add sync ... dbs=a:source,b:source`);
  its triggers on `orders` (a delta row trigger, a kick statement trigger) are what it
  costs a writer;
- `bench_bucardo_paris` and `bench_bucardo_london`: bridge with sites = [PARIS, LONDON]
  (A = PARIS, also the archive site: config requires one of the sites), its capture
  triggers, one `bridge run` subprocess per site with bridge's default settings, through
  the 3-node cluster in the benchmark vhost.

Three figures, each for Bucardo and for bridge:
1. capture ratio: single-row INSERT transactions into A's `orders` (one connection,
   autocommit, prepared), rows/s with the tool's triggers / rows/s in the plain database;
   neither tool's daemon runs meanwhile; tables and the tools' queues (Bucardo's delta and
   track tables, bridge's outbox) are emptied and a CHECKPOINT is taken before every
   round; within a round the three databases take turns over 10 slices of the rows, the
   order rotating from slice to slice (load from outside falls on all three alike);
   median over rounds of the per-round ratios.
2. latency at 200 rows/s: only the tool under test runs; a writer at A commits single-row
   INSERTs at a steady rate (open loop) and notes the time after each commit; a NOTIFY
   statement trigger on B's `orders` (ENABLE ALWAYS, so it fires under Bucardo's
   session_replication_role = replica too) and a LISTEN connection note when each row
   became visible at B. Latency = visible at B - commit at A; p50/p99 per run, medians over
   rounds; the two tools alternate which goes first.
3. backlog catch-up: replication stopped (Bucardo's daemon stopped; both bridges stopped,
   A's dispatcher included, so that neither tool has moved anything when the clock
   starts), N rows written at A in transactions of 1,000; then the clock starts and the
   tool is started (`bucardo start`, which kicks the sync; `bridge run` for both sites)
   and runs until B holds all N rows (polled every 0.25 s): rows/s = N / that time.

Nothing asserts; the aim (bridge ahead of Bucardo on all three) gets a PASS/FAIL line.

    python -m bench.bucardo [--quick] [--rounds R] [--backlog N] [--rate 200]
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import psycopg

from bench.capture import INSERT_ONE, make_rows
from bench.common import (
    Broker,
    checkpoint,
    drop_db,
    fmt,
    header,
    log,
    md_header,
    median,
    parser,
    percentile,
    table,
    write_results,
)
from bench.end_to_end import SEEN_CHANNEL, Observer, SubprocessBridges, write
from bridge import topology
from bridge.broker import DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE
from bridge.config import Config
from tests.conftest import create_site_db, make_config, pg_url, setup_site, sql, truncate

NAME = "bucardo"
PLAIN_DB = "bench_bucardo_plain"
BUC_A, BUC_B = "bench_bucardo_a", "bench_bucardo_b"
BR_A, BR_B = "bench_bucardo_paris", "bench_bucardo_london"
SITE_A, SITE_B = "PARIS", "LONDON"
TWO_SITES = (SITE_A, SITE_B)
SYNC = "bench_bucardo"  # Bucardo's sync, relgroup and dbgroup
BUC_DBS = {"bench_a": BUC_A, "bench_b": BUC_B}  # Bucardo's names of the two databases
BUCARDO_CONN = ["--dbhost=127.0.0.1", "--dbport=5432", "--dbuser=bucardo", "--dbname=bucardo"]
PIDDIR, LOGDIR = Path("/var/run/bucardo"), Path("/var/log/bucardo")
MCP_PID = PIDDIR / "bucardo.mcp.pid"
ALL_DBS = (PLAIN_DB, BUC_A, BUC_B, BR_A, BR_B)
TOOLS = ("bucardo", "bridge")
ROWS_PER_TX = 1000
CAPTURE_SLICES = 10  # turns per capture round


# -- Bucardo -------------------------------------------------------------------------------


def wait_pg(timeout: float = 120) -> None:
    """Wait until the server accepts connections (another user of the machine may restart
    it: the fault tests do)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sql("postgres", "SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def server_major() -> int:
    return int(sql("postgres", "SHOW server_version_num")[0][0]) // 10000


class Bucardo:
    """The `bucardo` command line (its control database on the benchmark's server), the
    daemon, and the sync between A and B."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        done = subprocess.run(
            ["bucardo", *BUCARDO_CONN, *args],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        out = (done.stdout + done.stderr).strip()
        if check and done.returncode != 0:
            raise RuntimeError(f"bucardo {' '.join(args)} failed ({done.returncode}):\n{out}")
        return out

    def ensure_installed(self) -> None:
        """The package, its role, its directories and its database, each only if missing."""
        if shutil.which("bucardo") is None:
            packages = ["bucardo", f"postgresql-plperl-{server_major()}"]
            log(f"bucardo is not installed: apt-get install -y {' '.join(packages)}")
            subprocess.run(
                ["apt-get", "install", "-y", *packages],
                check=True,
                capture_output=True,
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
            )
        for d in (PIDDIR, LOGDIR):
            d.mkdir(parents=True, exist_ok=True)
        # made here so that `bucardo install` does not make it with a password in ~/.pgpass
        sql(
            "postgres",
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bucardo') "
            "THEN CREATE ROLE bucardo SUPERUSER LOGIN; END IF; END $$",
        )
        installed = sql("postgres", "SELECT 1 FROM pg_database WHERE datname = 'bucardo'")
        if not installed:
            log("creating Bucardo's database: bucardo install --batch")
            done = subprocess.run(
                [
                    "bucardo",
                    "install",
                    "--batch",
                    "--dbhost=127.0.0.1",
                    "--dbport=5432",
                    "--dbuser=postgres",
                    "--dbname=postgres",
                ],
                cwd=self.workdir,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise RuntimeError(f"bucardo install failed:\n{done.stdout}{done.stderr}")

    def version(self) -> str:
        return self.run("--version").split()[-1]

    def settings(self) -> dict[str, str]:
        names = ("mcp_loop_sleep", "ctl_sleep", "kid_sleep", "log_level", "vac_sleep")
        rows = sql(
            "bucardo",
            "SELECT name, setting FROM bucardo.bucardo_config WHERE name = ANY(%s)",
            list(names),
        )
        return dict(rows)

    def remove_sync(self) -> None:
        """Whatever an earlier run left in Bucardo's configuration (each step may fail)."""
        self.run("remove", "sync", SYNC, check=False)
        self.run("remove", "relgroup", SYNC, check=False)
        self.run("remove", "dbgroup", SYNC, check=False)
        self.run("remove", "table", "public.orders", check=False)
        self.run("remove", "db", *BUC_DBS, "--force", check=False)

    def add_sync(self) -> None:
        for name, db in BUC_DBS.items():
            self.run("add", "db", name, f"dbname={db}", "host=127.0.0.1", "port=5432")
        self.run("add", "table", "public.orders", "db=bench_a", f"relgroup={SYNC}")
        self.run(
            "add",
            "sync",
            SYNC,
            f"relgroup={SYNC}",
            "dbs=" + ",".join(f"{n}:source" for n in BUC_DBS),
        )

    def mcp_pid(self) -> int | None:
        try:
            pid = int(MCP_PID.read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return pid

    def start(self) -> None:
        """`bucardo start`: the daemon kicks every autokick sync when it starts."""
        self.run("start", "--sendmail=0", "bench.bucardo")

    def running(self) -> bool:
        """The daemon and the sync's controller are there."""
        return self.mcp_pid() is not None and (PIDDIR / f"bucardo.ctl.sync.{SYNC}.pid").exists()

    def stop(self, timeout: float = 30) -> None:
        """`bucardo stop`, then wait for the daemon named in the pid file to exit; a
        SIGTERM, then a SIGKILL, to that pid if it does not."""
        if self.mcp_pid() is None:
            return
        self.run("stop", check=False)
        deadline = time.monotonic() + timeout
        while (pid := self.mcp_pid()) is not None:
            if time.monotonic() > deadline:
                log(f"Bucardo's daemon {pid} still runs after `bucardo stop`: SIGTERM, SIGKILL")
                os.kill(pid, signal.SIGTERM)
                time.sleep(3)
                if self.mcp_pid() == pid:
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.2)

    def log_tail(self) -> str:
        path = LOGDIR / "log.bucardo"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def reset_bucardo(db: str) -> None:
    """Empty `orders` and Bucardo's delta and track tables without firing its triggers."""
    with psycopg.connect(pg_url(db), autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            "TRUNCATE orders, bucardo.delta_public_orders, bucardo.track_public_orders, "
            "bucardo.stage_public_orders"
        )


# -- bridge, two sites -----------------------------------------------------------------------


def queues() -> list[str]:
    return topology.queue_names(TWO_SITES, SITE_A)


def fresh_topology(broker: Broker) -> None:
    """Refuse to run beside another user of the vhost's queues, then declare them empty."""
    for q in queues():
        with broker.admin() as ch:
            try:
                consumers = ch.queue_declare(q, passive=True).method.consumer_count
            except pika.exceptions.ChannelClosedByBroker:
                continue  # not there
        if consumers:
            raise SystemExit(
                f"queue {q} of vhost {broker.vhost} has {consumers} consumer(s): another "
                "benchmark uses the vhost; wait for it or pass --vhost"
            )
    with broker.admin() as ch:
        for q in queues():
            ch.queue_delete(q)
            ch.queue_delete(f"{q}.dlq")
        topology.apply(ch, TWO_SITES, SITE_A)


def teardown_topology(broker: Broker) -> None:
    with broker.admin() as ch:
        for q in queues():
            ch.queue_delete(q)
            ch.queue_delete(f"{q}.dlq")
        if broker.vhost != "/":
            ch.exchange_delete(EVENTS_EXCHANGE)
            ch.exchange_delete(DEAD_LETTER_EXCHANGE)


def bridges_up(broker: Broker, bridges: SubprocessBridges) -> bool:
    """Every queue has its consumer and both dispatchers hold their lease."""
    bridges.check()
    with broker.admin() as ch:
        consumers = [ch.queue_declare(q, passive=True).method.consumer_count for q in queues()]
    leases = [
        sql(
            db,
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND d.datname = %s",
            db,
        )[0][0]
        for db in (BR_A, BR_B)
    ]
    return all(consumers) and all(leases)


def wait_up(tool: Tool, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not tool.up():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{tool.name} did not come up within {timeout:.0f} s")
        time.sleep(0.2)


# -- the two tools behind one interface ------------------------------------------------------


@dataclass
class Tool:
    name: str
    a: str  # the database written to
    b: str  # the database read from
    start: Callable[[], None]
    up: Callable[[], bool]  # running and connected, as far as can be seen from outside
    stop: Callable[[], None]
    reset: Callable[[str], None]


def reset_bridge(db: str) -> None:
    truncate(db, "orders, bridge_outbox RESTART IDENTITY")


def reset_plain(db: str) -> None:
    sql(db, "TRUNCATE orders")


# -- visibility at B -------------------------------------------------------------------------


@dataclass
class SeenAt(Observer):
    """end_to_end's Observer, listening in any database (`db`)."""

    db: str = ""

    def _run(self) -> None:
        try:
            with psycopg.connect(pg_url(self.db), autocommit=True) as conn:
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


# end_to_end's instrument, with the ids sent in pieces: Bucardo applies a whole backlog in
# one COPY, and a notification's payload is limited to 8000 bytes. Switched off (for the
# backlog runs, which count rows) by replacing the function: an ALTER TABLE would make
# bridge's event trigger swap in the after-ALTER form of its capture.
SEEN_ON = f"""
DECLARE
    piece text;
BEGIN
    FOR piece IN
        SELECT string_agg(id::text, ',') FROM
            (SELECT id, (row_number() OVER ()) / 500 AS n FROM bench_new) ids GROUP BY n
    LOOP
        PERFORM pg_notify('{SEEN_CHANNEL}', piece);
    END LOOP;
    RETURN NULL;
END"""
SEEN_OFF = "BEGIN RETURN NULL; END"


def seen_trigger(db: str, on: bool) -> None:
    body = SEEN_ON if on else SEEN_OFF
    sql(
        db,
        f"CREATE OR REPLACE FUNCTION bench_seen() RETURNS trigger LANGUAGE plpgsql AS $${body}$$",
    )


def install_seen(db: str) -> None:
    """Before bridge's setup (its event trigger notes ALTER TABLEs from then on)."""
    seen_trigger(db, on=True)
    sql(
        db,
        "CREATE TRIGGER bench_seen AFTER INSERT ON orders REFERENCING NEW TABLE AS bench_new "
        "FOR EACH STATEMENT EXECUTE FUNCTION bench_seen()",
    )
    # Bucardo applies with session_replication_role = replica: fire then too
    sql(db, "ALTER TABLE orders ENABLE ALWAYS TRIGGER bench_seen")


def wait_seen(obs: SeenAt, ids: range, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (n := obs.count(ids)) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return n


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 50), 2),
        "p90_ms": round(percentile(values, 90), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2) if values else float("nan"),
        "samples": len(values),
    }


# -- the three measurements ------------------------------------------------------------------


def insert_rate(db: str, rows: Sequence[Any]) -> float:
    """Single-row INSERT transactions per second (the first, which prepares, not timed)."""
    with psycopg.connect(pg_url(db), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(INSERT_ONE, rows[0], prepare=True)
        t0 = time.perf_counter()
        for row in rows[1:]:
            cur.execute(INSERT_ONE, row, prepare=True)
        return (len(rows) - 1) / (time.perf_counter() - t0)


def capture_round(
    r: int,
    rows: Sequence[Any],
    targets: dict[str, tuple[str, Callable[[str], None]]],
    slices: int,
) -> dict[str, Any]:
    """One round: the tables emptied and a CHECKPOINT, then the rows in `slices` slices;
    in each slice the three databases take turns, the order rotating from slice to slice,
    so that what else the machine does meanwhile falls on all three alike."""
    kinds = list(targets)
    for db, reset in targets.values():
        reset(db)
    checkpoint()
    seconds = dict.fromkeys(kinds, 0.0)
    written = dict.fromkeys(kinds, 0)
    with ExitStack() as stack:
        curs = {}
        for kind, (db, _) in targets.items():
            conn = stack.enter_context(psycopg.connect(pg_url(db), autocommit=True))
            curs[kind] = stack.enter_context(conn.cursor())
            curs[kind].execute(INSERT_ONE, rows[0], prepare=True)  # prepared, not timed
        size = -(-(len(rows) - 1) // slices)
        for j, first in enumerate(range(1, len(rows), size)):
            part = rows[first : first + size]
            k = (r + j) % len(kinds)
            for kind in kinds[k:] + kinds[:k]:
                cur = curs[kind]
                t0 = time.perf_counter()
                for row in part:
                    cur.execute(INSERT_ONE, row, prepare=True)
                seconds[kind] += time.perf_counter() - t0
                written[kind] += len(part)
    got = {k: written[k] / seconds[k] for k in kinds}
    entry: dict[str, Any] = {"round": r + 1, "slices": slices}
    entry.update({f"{k}_tps": round(v, 1) for k, v in got.items()})
    for tool in TOOLS:
        entry[f"{tool}_ratio"] = round(got[tool] / got["plain"], 4)
    return entry


def latency_run(
    tool: Tool, obs: SeenAt, ids: count[int], rate: float, seconds: float
) -> dict[str, Any]:
    tool.reset(tool.a)
    tool.reset(tool.b)
    tool.start()
    try:
        wait_up(tool)
        warm = write(tool.a, next_block(ids, 200), 200, rate)
        if wait_seen(obs, warm.ids, 60) < 200:
            raise RuntimeError(f"{tool.name}: the warm-up rows did not all reach B in 60 s")
        n = int(rate * seconds)
        w = write(tool.a, next_block(ids, n), n, rate)
        wait_seen(obs, w.ids, 60)
    finally:
        tool.stop()
    lat = [(obs.seen[i] - c) * 1000 for i, c in zip(w.ids, w.commits, strict=True) if i in obs.seen]
    return {
        **summary(lat),
        "achieved_rate": round(w.rate, 1),
        "writer_max_lag_ms": round(w.max_lag_s * 1000, 1),
        "missing": n - len(lat),
    }


def write_backlog(db: str, first: int, n: int) -> float:
    """N rows in transactions of ROWS_PER_TX single-row INSERTs; seconds taken."""
    t0 = time.perf_counter()
    with psycopg.connect(pg_url(db)) as conn:
        for start in range(first, first + n, ROWS_PER_TX):
            rows = make_rows(min(ROWS_PER_TX, first + n - start), start)
            with conn.cursor() as cur:
                cur.executemany(INSERT_ONE, rows)
            conn.commit()
    return time.perf_counter() - t0


def backlog_run(tool: Tool, ids: count[int], n: int) -> dict[str, Any]:
    tool.reset(tool.a)
    tool.reset(tool.b)
    first = next_block(ids, n)
    written_s = write_backlog(tool.a, first, n)
    checkpoint()
    query = "SELECT count(*) FROM orders WHERE id >= %s AND id < %s"
    timeout = 300 + n / 100
    held = 0
    up_s = float("nan")
    t0 = time.perf_counter()
    tool.start()
    try:
        while time.perf_counter() - t0 < timeout:
            if up_s != up_s and tool.up():
                up_s = time.perf_counter() - t0
            held = sql(tool.b, query, first, first + n)[0][0]
            if held >= n:
                break
            time.sleep(0.25)
        took = time.perf_counter() - t0
    finally:
        tool.stop()
    done = held >= n
    return {
        "rows": n,
        "written_s": round(written_s, 1),
        "write_rows_per_s": round(n / written_s),
        "catch_up_s": round(took, 2),
        "up_after_s": round(up_s, 2),
        "catch_up_rows_per_s": round(n / took) if done else float("nan"),
        "held_at_b": held,
        "complete": done,
    }


def next_block(ids: count[int], n: int) -> int:
    """The first of n fresh ids (ids are never reused within a run)."""
    first = next(ids)
    for _ in range(n - 1):
        next(ids)
    return first


# -- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument(
        "--single",
        type=int,
        default=None,
        help="single-row transactions per capture round and database",
    )
    p.add_argument("--rate", type=float, default=200.0, help="rows/s of the latency runs")
    p.add_argument("--seconds", type=float, default=None, help="length of a latency run")
    p.add_argument("--backlog", type=int, default=None, help="rows of the backlog (500,000)")
    p.add_argument("--backlog-rounds", type=int, default=1, help="backlog runs per tool (1)")
    args = p.parse_args(argv)
    quick: bool = args.quick
    rounds = args.rounds or (2 if quick else 4)
    n_single = args.single or (4000 if quick else 15000)
    seconds = args.seconds or (8.0 if quick else 30.0)
    n_backlog = args.backlog or (20_000 if quick else 500_000)
    broker = Broker(args.vhost, args.amqp_host_port)
    broker.ensure_ready()
    workdir = Path(tempfile.mkdtemp(prefix="bench_bucardo_"))
    buc = Bucardo(workdir)
    buc.ensure_installed()
    params: dict[str, Any] = {
        "rounds": rounds,
        "single_row_transactions": n_single,
        "latency_rate_per_s": args.rate,
        "latency_seconds": seconds,
        "backlog_rows": n_backlog,
        "backlog_rows_per_tx": ROWS_PER_TX,
        "backlog_rounds": args.backlog_rounds,
        "bucardo": f"{buc.version()} (Debian package), sync {SYNC}: 2 sources, default settings",
        "bridge": "sites [PARIS, LONDON], PARIS = A and archive site, `bridge run` per site, "
        f"defaults of bridge.config.Config (poll_interval {Config.poll_interval}s)",
        "backlog_stopped": "Bucardo: daemon stopped; bridge: both sites' bridges stopped "
        "(A's dispatcher too)",
    }
    result = header(NAME, quick, broker, params)
    result["bucardo_settings"] = buc.settings()
    started = time.perf_counter()

    bridge_cfgs = {
        site: make_config(
            site,
            db,
            amqp_url=broker.site_url(site),
            sites=list(TWO_SITES),
            archive_site=SITE_A,
            poll_interval=Config.poll_interval,
            republish_after=Config.republish_after,
        )
        for site, db in ((SITE_A, BR_A), (SITE_B, BR_B))
    }
    bridges = SubprocessBridges(bridge_cfgs, workdir)
    observers: dict[str, SeenAt] = {}
    raw: dict[str, list[dict[str, Any]]] = {"capture": [], "latency": [], "backlog": []}
    try:
        log("bucardo: creating databases, the Bucardo sync and the bridge sites")
        buc.stop()
        buc.remove_sync()
        for db in ALL_DBS:
            create_site_db(db)
        for b in (BUC_B, BR_B):
            install_seen(b)
        buc.add_sync()
        for cfg in bridge_cfgs.values():
            setup_site(cfg)
        fresh_topology(broker)

        def bridge_stop() -> None:
            bridges.stop()
            bridges.procs.clear()

        tools = {
            "bucardo": Tool(
                "bucardo", BUC_A, BUC_B, buc.start, buc.running, buc.stop, reset_bucardo
            ),
            "bridge": Tool(
                "bridge",
                BR_A,
                BR_B,
                bridges.start,
                lambda: bridges_up(broker, bridges),
                bridge_stop,
                reset_bridge,
            ),
        }

        # 1. capture
        rows = make_rows(n_single)
        targets = {"plain": (PLAIN_DB, reset_plain)}
        targets.update({t: (tools[t].a, tools[t].reset) for t in TOOLS})
        for db, reset in targets.values():  # warm-up: caches, plans
            reset(db)
            insert_rate(db, rows[:300])
        for r in range(rounds):
            e = capture_round(r, rows, targets, CAPTURE_SLICES)
            raw["capture"].append(e)
            log(
                f"capture round {r + 1}/{rounds}: plain {e['plain_tps']:.0f} tx/s, Bucardo "
                f"{e['bucardo_tps']:.0f} ({e['bucardo_ratio']:.3f}), bridge "
                f"{e['bridge_tps']:.0f} ({e['bridge_ratio']:.3f})"
            )
        for db, reset in targets.values():
            reset(db)

        # 2. latency, 3. backlog: ids never reused, so nothing seen earlier counts again
        ids = count(n_single + 1)
        for tool in TOOLS:
            observers[tool] = SeenAt(tool, db=tools[tool].b)
            observers[tool].start()
        for r in range(rounds):
            entry: dict[str, Any] = {"round": r + 1}
            for tool in TOOLS if r % 2 == 0 else TOOLS[::-1]:
                entry[tool] = latency_run(tools[tool], observers[tool], ids, args.rate, seconds)
            raw["latency"].append(entry)
            log(
                f"latency round {r + 1}/{rounds} at {args.rate:.0f}/s: Bucardo p50 "
                f"{entry['bucardo']['p50_ms']:.1f} p99 {entry['bucardo']['p99_ms']:.1f} ms; "
                f"bridge p50 {entry['bridge']['p50_ms']:.1f} p99 "
                f"{entry['bridge']['p99_ms']:.1f} ms"
            )
        for o in observers.values():
            o.close()
        for t in TOOLS:
            seen_trigger(tools[t].b, on=False)
        for r in range(args.backlog_rounds):
            entry = {"round": r + 1}
            for tool in TOOLS if r % 2 == 0 else TOOLS[::-1]:
                log(f"backlog {r + 1}: {tool}, {n_backlog:,} rows")
                entry[tool] = backlog_run(tools[tool], ids, n_backlog)
                log(
                    f"backlog {r + 1}: {tool} wrote in {entry[tool]['written_s']} s, caught up "
                    f"in {entry[tool]['catch_up_s']} s ({entry[tool]['catch_up_rows_per_s']} "
                    "rows/s)"
                )
            raw["backlog"].append(entry)
    finally:
        log("bucardo: cleaning up")
        wait_pg()
        for o in observers.values():
            o.close()
        for what, fn in (
            ("stopping the bridges", bridges.stop),
            ("stopping Bucardo", buc.stop),
            ("Bucardo's log", lambda: result.update(bucardo_log_tail=buc.log_tail())),
            ("removing the Bucardo sync", buc.remove_sync),
            ("deleting the queues", lambda: teardown_topology(broker)),
            *((f"dropping {db}", partial(drop_db, db)) for db in ALL_DBS),
        ):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - the other steps still run
                log(f"cleanup: {what} failed: {exc!r}")
        result["bridge_logs_tail"] = {
            site: path.read_text(errors="replace")[-3000:]
            for site in bridge_cfgs
            if (path := workdir / f"{site.lower()}.log").exists()
        }
        shutil.rmtree(workdir, ignore_errors=True)

    result["rounds"] = raw
    result["medians"] = medians(raw)
    result["results"] = verdicts(result["medians"])
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    write_results(NAME, result, markdown(result))
    return result


def medians(raw: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    cap, lat, back = raw["capture"], raw["latency"], raw["backlog"]
    m = {"plain_tps": median([e["plain_tps"] for e in cap])}
    for t in TOOLS:
        m[f"{t}_tps"] = median([e[f"{t}_tps"] for e in cap])
        m[f"{t}_capture_ratio"] = median([e[f"{t}_ratio"] for e in cap])
        m[f"{t}_p50_ms"] = median([e[t]["p50_ms"] for e in lat])
        m[f"{t}_p99_ms"] = median([e[t]["p99_ms"] for e in lat])
        m[f"{t}_catch_up_rows_per_s"] = median([e[t]["catch_up_rows_per_s"] for e in back])
        m[f"{t}_catch_up_s"] = median([e[t]["catch_up_s"] for e in back])
    return m


def verdicts(m: dict[str, float]) -> dict[str, Any]:
    def cmp(key: str, higher_is_better: bool) -> dict[str, Any]:
        bu, br = m[f"bucardo_{key}"], m[f"bridge_{key}"]
        if bu != bu or br != br:
            v = "n/a"
        else:
            v = "PASS" if (br > bu if higher_is_better else br < bu) else "FAIL"
        return {"bucardo": bu, "bridge": br, "bridge_over_bucardo": br / bu, "verdict": v}

    return {
        "capture_ratio": {**cmp("capture_ratio", True), "aim": "bridge higher"},
        "latency_p50_ms": {**cmp("p50_ms", False), "aim": "bridge lower"},
        "latency_p99_ms": {**cmp("p99_ms", False), "aim": "bridge lower"},
        "backlog_rows_per_s": {**cmp("catch_up_rows_per_s", True), "aim": "bridge higher"},
    }


def markdown(result: dict[str, Any]) -> str:
    m, res, prm = result["medians"], result["results"], result["parameters"]
    title = "Bridge next to Bucardo: two masters, same workload"
    if result["mode"] == "quick":
        title += " (QUICK run: small sizes)"
    lines = md_header(result, title)
    lines += [
        f"Bucardo {prm['bucardo']}; bridge {prm['bridge']}. Medians over rounds. Aim (issue): "
        "bridge ahead of Bucardo on all three figures.",
        "",
    ]
    lines += table(
        ["figure", "Bucardo", "bridge", "bridge / Bucardo", "aim", "verdict"],
        [
            [
                f"capture: single-row tx/s with triggers / without ({fmt(m['plain_tps'])} tx/s)",
                f"{fmt(m['bucardo_capture_ratio'], 3)} ({fmt(m['bucardo_tps'])} tx/s)",
                f"{fmt(m['bridge_capture_ratio'], 3)} ({fmt(m['bridge_tps'])} tx/s)",
                fmt(res["capture_ratio"]["bridge_over_bucardo"], 2),
                "higher",
                res["capture_ratio"]["verdict"],
            ],
            [
                f"latency p50 at {prm['latency_rate_per_s']:.0f} rows/s, A commit -> visible at B",
                f"{fmt(m['bucardo_p50_ms'], 1)} ms",
                f"{fmt(m['bridge_p50_ms'], 1)} ms",
                fmt(res["latency_p50_ms"]["bridge_over_bucardo"], 2),
                "lower",
                res["latency_p50_ms"]["verdict"],
            ],
            [
                f"latency p99 at {prm['latency_rate_per_s']:.0f} rows/s",
                f"{fmt(m['bucardo_p99_ms'], 1)} ms",
                f"{fmt(m['bridge_p99_ms'], 1)} ms",
                fmt(res["latency_p99_ms"]["bridge_over_bucardo"], 2),
                "lower",
                res["latency_p99_ms"]["verdict"],
            ],
            [
                f"backlog catch-up, {prm['backlog_rows']:,} rows, rows/s",
                f"{fmt(m['bucardo_catch_up_rows_per_s'])} ({fmt(m['bucardo_catch_up_s'], 1)} s)",
                f"{fmt(m['bridge_catch_up_rows_per_s'])} ({fmt(m['bridge_catch_up_s'], 1)} s)",
                fmt(res["backlog_rows_per_s"]["bridge_over_bucardo"], 2),
                "higher",
                res["backlog_rows_per_s"]["verdict"],
            ],
        ],
    )
    lines += [
        "",
        f"Backlog: {prm['backlog_stopped']}; the clock starts when the tool is started and "
        "stops when B holds every row; 'up after' = when the tool was seen running (Bucardo: "
        "daemon and sync controller pid files; bridge: every queue consumed, both leases).",
        "",
        "Capture rounds (tx/s; in each round the three take turns over 10 slices, the order "
        "rotating from slice to slice):",
        "",
    ]
    lines += table(
        ["round", "plain", "Bucardo", "ratio", "bridge", "ratio"],
        [
            [
                e["round"],
                fmt(e["plain_tps"]),
                fmt(e["bucardo_tps"]),
                fmt(e["bucardo_ratio"], 3),
                fmt(e["bridge_tps"]),
                fmt(e["bridge_ratio"], 3),
            ]
            for e in result["rounds"]["capture"]
        ],
    )
    lines += ["", "Latency rounds (ms):", ""]
    lines += table(
        ["round", "Bucardo p50", "p99", "max", "missing", "bridge p50", "p99", "max", "missing"],
        [
            [e["round"]]
            + [
                x
                for t in TOOLS
                for x in (
                    fmt(e[t]["p50_ms"], 1),
                    fmt(e[t]["p99_ms"], 1),
                    fmt(e[t]["max_ms"], 1),
                    e[t]["missing"],
                )
            ]
            for e in result["rounds"]["latency"]
        ],
    )
    lines += ["", "Backlog runs:", ""]
    lines += table(
        [
            "round",
            "tool",
            "written in s (rows/s)",
            "up after s",
            "caught up in s",
            "rows/s",
            "complete",
        ],
        [
            [
                e["round"],
                t,
                f"{e[t]['written_s']} ({fmt(e[t]['write_rows_per_s'])})",
                fmt(e[t]["up_after_s"], 2),
                e[t]["catch_up_s"],
                fmt(e[t]["catch_up_rows_per_s"]),
                e[t]["complete"],
            ]
            for e in result["rounds"]["backlog"]
            for t in TOOLS
        ],
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
