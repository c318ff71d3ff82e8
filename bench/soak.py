"""Soak: steady load on three sites for a while, with the world breaking on a schedule.

Three `bridge run` processes (PARIS, LONDON, MADRID; PARIS archives) sync databases
`bench_soak_*` through the local 3-node cluster, in the benchmark vhost. Each site's
application commits single-row inserts (every fifth row is updated once after) at a steady
rate. Meanwhile a broker node is restarted (graceful stop of its VM, then start) every
`--node-every` seconds, in turn, and a bridge is killed with SIGKILL and started again every
`--kill-every` seconds, in turn. At the end the writers stop and the run waits until every
event is everywhere, then counts: events written, lost, applied twice, duplicates skipped,
commit-to-apply lag (p50, p99, max), the bridges' resident memory over time.

    python -m bench.soak [--minutes 10] [--rate 20] [--node-every 60] [--kill-every 120]

Results: bench/results/soak.json and soak.md. Nothing here asserts; the figures are the
result (lost and applied twice must be 0; RSS should stay flat).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from bench.common import (
    Broker,
    drop_db,
    fmt,
    header,
    log,
    md_header,
    parser,
    percentile,
    site_configs,
    table,
    write_results,
)
from bridge import verify
from bridge.config import Config
from tests.conftest import ROOT, SITES, sql
from tests.faults.harness import BridgeProcess, install_audit, settle, tally

NAME = "soak"


class SteadyWriter(threading.Thread):
    """A legacy application at one site: `rate` changes per second, on a schedule (a late
    change does not make the next ones faster)."""

    def __init__(self, cfg: Config, rate: float, first_id: int) -> None:
        super().__init__(daemon=True)
        self.cfg, self.rate, self.next_id = cfg, rate, first_id
        self.stop = threading.Event()
        self.rows = 0
        self.events = 0

    def run(self) -> None:
        start = time.monotonic()
        with psycopg.connect(self.cfg.database_url, autocommit=True) as conn:
            while not self.stop.is_set():
                due = start + self.events / self.rate
                if self.stop.wait(max(0.0, due - time.monotonic())):
                    return
                i = self.next_id
                conn.execute(
                    "INSERT INTO orders (id, customer, amount, note) VALUES (%s, %s, %s, %s)",
                    (i, self.cfg.site, i % 10_000, "soak"),
                )
                self.next_id += 1
                self.rows += 1
                self.events += 1
                if i % 5 == 0:
                    conn.execute("UPDATE orders SET note = 'updated' WHERE id = %s", (i,))
                    self.events += 1


def cluster(*args: str) -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "cluster"), *args], check=True, capture_output=True, timeout=300
    )


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def lags(cfgs: Sequence[Config], archive: Config) -> dict[str, list[float]]:
    """Seconds from each event's commit stamp at its origin to its apply at each other site
    (and to its archiving), from the databases' own clocks (one machine)."""
    stamps = dict(
        sql(archive.database_url.rsplit("/", 1)[1], "SELECT event_id::text, ts FROM bridge_archive")
    )
    out: dict[str, list[float]] = {}
    for c in cfgs:
        db = c.database_url.rsplit("/", 1)[1]
        out[c.site] = [
            (at - stamps[e]).total_seconds()
            for e, at in sql(db, "SELECT event_id::text, applied_at FROM bridge_inbox")
            if e in stamps
        ]
    out["archive"] = [
        (at - ts).total_seconds()
        for ts, at in sql(
            archive.database_url.rsplit("/", 1)[1], "SELECT ts, archived_at FROM bridge_archive"
        )
    ]
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument("--minutes", type=float, default=10.0, help="load duration (default 10)")
    p.add_argument("--rate", type=float, default=20.0, help="changes/s per site (default 20)")
    p.add_argument("--node-every", type=float, default=60.0, help="seconds between node restarts")
    p.add_argument("--kill-every", type=float, default=120.0, help="seconds between kill -9s")
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    args = p.parse_args(argv)
    if args.quick:
        args.minutes = min(args.minutes, 2.0)
    broker = Broker(args.vhost, args.amqp_host_port)
    broker.ensure_ready()
    broker.fresh_topology()
    params = {
        "minutes": args.minutes,
        "rate_per_site": args.rate,
        "node_restart_every_s": args.node_every,
        "bridge_kill_every_s": args.kill_every,
        "sites": list(SITES),
        "bridge_settings": "bridge defaults, heartbeat 10",
    }
    result = header(NAME, args.quick, broker, params)
    started = time.perf_counter()
    cfgs = site_configs(broker, "bench_soak")
    install_audit(cfgs)
    logdir = Path(tempfile.mkdtemp(prefix="bridge-soak-"))
    procs = {c.site: BridgeProcess(c, logdir, heartbeat=10) for c in cfgs}
    writers = [SteadyWriter(c, args.rate, n * 10_000_000 + 1) for n, c in enumerate(cfgs)]
    samples: list[dict[str, Any]] = []
    actions: list[str] = []
    restarts: list[threading.Thread] = []
    try:
        for b in procs.values():
            b.start()
        for b in procs.values():
            b.wait_ready()
        log(f"soak: {args.minutes:g} min at {args.rate:g} changes/s per site")
        for w in writers:
            w.start()
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        next_node, next_kill, next_sample = t0 + args.node_every, t0 + args.kill_every, t0
        node, victim = 0, 0
        while (now := time.monotonic()) < end:
            if now >= next_sample:
                next_sample += args.sample_every
                samples.append(
                    {
                        "t_s": round(now - t0, 1),
                        "rss_kib": {
                            s: rss_kib(b.proc.pid) if b.proc else None for s, b in procs.items()
                        },
                        "outbox": {
                            c.site: sql(
                                c.database_url.rsplit("/", 1)[1],
                                "SELECT count(*) FROM bridge_outbox",
                            )[0][0]
                            for c in cfgs
                        },
                        "written": sum(w.events for w in writers),
                    }
                )
            if now >= next_node and not any(t.is_alive() for t in restarts):
                next_node += args.node_every
                n = str(node % 3 + 1)
                node += 1
                actions.append(f"{now - t0:.0f}s restart-node {n}")
                log(actions[-1])
                t = threading.Thread(target=cluster, args=("restart-node", n), daemon=True)
                t.start()
                restarts.append(t)
            if now >= next_kill:
                next_kill += args.kill_every
                b = procs[SITES[victim % 3]]
                victim += 1
                b.kill()
                b.start()
                actions.append(f"{now - t0:.0f}s kill -9 bridge {b.site}")
                log(actions[-1])
            time.sleep(0.2)
        for w in writers:
            w.stop.set()
            w.join(30)
        for t in restarts:
            t.join(300)
        events = sum(w.events for w in writers)
        log(f"load done: {events} events; waiting for every site to hold them all")
        settle_start = time.monotonic()
        settle(cfgs, sum(w.rows for w in writers), events, timeout=900)
        drain_s = time.monotonic() - settle_start
        t = tally(cfgs, events, procs)
        log(t.line())
        archive = next(c for c in cfgs if c.is_archive)
        lag = lags(cfgs, archive)
        _, differing = verify.verify(cfgs[0], {c.site: c.database_url for c in cfgs[1:]})
        final_rss = {s: rss_kib(b.proc.pid) if b.proc else None for s, b in procs.items()}
        kills = {s: b.kills for s, b in procs.items()}
    finally:
        for b in procs.values():
            if b.alive():
                b.terminate()
        for w in writers:
            w.stop.set()
    all_lags = [x for v in lag.values() for x in v]
    result.update(
        {
            "events_written": events,
            "events_archived": t.archived,
            "lost": t.lost,
            "applied_twice": t.applied_twice,
            "duplicates_skipped": {s: x.duplicates for s, x in t.sites.items()},
            "superseded": {s: x.superseded for s, x in t.sites.items()},
            "conflicts": {s: x.conflicts for s, x in t.sites.items()},
            "verify_differing": differing,
            "drain_after_load_s": round(drain_s, 1),
            "lag_s": {
                k: {
                    "p50": round(percentile(v, 50), 3),
                    "p99": round(percentile(v, 99), 3),
                    "max": round(max(v), 3),
                    "n": len(v),
                }
                for k, v in {**lag, "all": all_lags}.items()
                if v
            },
            "rss_kib_final": final_rss,
            "actions": actions,
            "samples": samples,
            "kills": kills,
            "elapsed_s": round(time.perf_counter() - started, 1),
        }
    )
    write_results(NAME, result, markdown(result))
    for c in cfgs:
        drop_db(c.database_url.rsplit("/", 1)[1])
    broker.teardown()
    shutil.rmtree(logdir, ignore_errors=True)
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = md_header(r, "Soak: steady load while broker nodes restart and bridges die")
    lines += [
        f"Events written {r['events_written']:,}, archived {r['events_archived']:,}; "
        f"**lost {r['lost']}, applied twice {r['applied_twice']}**; `bridge verify`: "
        f"{'clean' if not r['verify_differing'] else 'DIFFERS ' + str(r['verify_differing'])}"
        f"; every event everywhere {r['drain_after_load_s']:.0f} s after the load stopped.",
        "",
        f"Duplicates skipped {r['duplicates_skipped']}; superseded {r['superseded']}; "
        f"conflicts {r['conflicts']}; kill -9 per bridge {r['kills']}.",
        "",
        "Commit-to-apply lag (origin's commit stamp to the apply at each site, or to the "
        "archive), seconds:",
        "",
    ]
    lines += table(
        ["where", "events", "p50", "p99", "max"],
        [
            [k, f"{v['n']:,}", fmt(v["p50"], 3), fmt(v["p99"], 3), fmt(v["max"], 3)]
            for k, v in r["lag_s"].items()
        ],
    )
    lines += [
        "",
        "Resident memory of the bridge processes (MiB) and outbox backlog, "
        "one sample a minute (a bridge killed and restarted starts again low):",
        "",
    ]
    per_minute = [s for s in r["samples"] if int(s["t_s"]) % 60 < 5]
    lines += table(
        ["t (s)", *[f"RSS {s}" for s in SITES], *[f"outbox {s}" for s in SITES], "written"],
        [
            [
                f"{s['t_s']:.0f}",
                *[fmt((s["rss_kib"][x] or 0) / 1024, 1) for x in SITES],
                *[str(s["outbox"][x]) for x in SITES],
                f"{s['written']:,}",
            ]
            for s in per_minute
        ],
    )
    lines += ["", "Actions:", ""] + [f"- {a}" for a in r["actions"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
