"""Backlog: two sites write many events while the third site's bridge is away (issue 12's
scenario, the longer variant of tests/faults/test_backlog.py).

PARIS and MADRID each insert `--events / 2` rows in transactions of `--per-tx` rows while
LONDON's bridge is stopped; the run measures how many messages were published per event
(the figure a republish storm blows up), the queues' depth at their peak, the time until
PARIS and MADRID hold the same rows with every echo back, and the time LONDON then takes
to catch up. `bridge verify` must be clean at the end.

    python -m bench.backlog [--events 1000000] [--per-tx 250]

Results: bench/results/backlog.json and backlog.md. Nothing here asserts.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    Broker,
    drop_db,
    header,
    log,
    md_header,
    parser,
    site_configs,
    table,
    write_results,
)
from tests import backlog

NAME = "backlog"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument("--events", type=int, default=1_000_000, help="events, both sites together")
    p.add_argument("--per-tx", type=int, default=250, help="rows per transaction (250)")
    args = p.parse_args(argv)
    if args.quick:
        args.events = min(args.events, 100_000)
    broker = Broker(args.vhost, args.amqp_host_port)
    broker.ensure_ready()
    broker.fresh_topology()
    result = header(
        NAME,
        args.quick,
        broker,
        {"events": args.events, "rows_per_tx": args.per_tx, "writing": "PARIS, MADRID"},
    )
    cfgs = site_configs(broker, "bench_backlog")
    logdir = Path(tempfile.mkdtemp(prefix="bridge-backlog-"))
    started = time.perf_counter()
    try:
        run = backlog.run(
            cfgs,
            logdir,
            args.events // 2,
            args.per_tx,
            timeout=7200,
            progress=log,
            admin_url=broker.admin_url(),
            watch_nodes=True,
        )
    finally:
        for c in cfgs:
            drop_db(c.database_url.rsplit("/", 1)[1])
        broker.teardown()
        shutil.rmtree(logdir, ignore_errors=True)
    result["results"] = {
        "events": run.events,
        "written_s": round(run.written_seconds, 1),
        "events_sent": run.sent,
        "sent_per_event": sum(run.sent.values()) / run.events,
        "messages_sent": run.messages,
        "republished": run.republished,
        "peak_queue_depth": run.peak_depth,
        "two_sites_equal_after_s": round(run.converge_seconds, 1),
        "catch_up_s": round(run.catch_up_seconds, 1),
        "catch_up_events_per_s": round(run.events / run.catch_up_seconds),
        "verify": "clean",
        "verify_s": round(run.verify_seconds, 1),
        "peak_rss_mb": run.peak_rss_mb,
        "broker_nodes": run.broker,
    }
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    write_results(NAME, result, markdown(result))
    for line in run.lines():
        log(line)
    return result


def markdown(r: dict[str, Any]) -> str:
    res = r["results"]
    lines = md_header(r, "Backlog: two sites write while the third is away")
    lines += table(
        ["figure", "value"],
        [
            ["events captured (PARIS + MADRID)", f"{res['events']:,} in {res['written_s']} s"],
            ["events published per event captured", f"{res['sent_per_event']:.4f}"],
            ["events published", str(res["events_sent"])],
            ["in AMQP messages (up to 100 events each)", str(res["messages_sent"])],
            ["published again (own queue lost them)", str(res["republished"])],
            ["queue depth at its peak", str(res["peak_queue_depth"])],
            ["PARIS and MADRID equal, every echo back", f"{res['two_sites_equal_after_s']} s"],
            [
                "LONDON back: caught up in",
                f"{res['catch_up_s']} s ({res['catch_up_events_per_s']:,} events/s)",
            ],
            [
                "resident memory at its peak, MB (bridges; broker nodes)",
                str(res["peak_rss_mb"]),
            ],
            [
                "bridge verify (1,000,000 rows at each site)",
                f"{res['verify']} in {res['verify_s']} s",
            ],
        ],
    )
    lines += ["", "Broker nodes (`rabbitmqctl status` every 10 s, data directory size):", ""]
    lines += table(
        [
            "node",
            "memory at peak, MB",
            "high watermark, MB",
            "data dir at peak, MB",
            "disk free at least, MB",
            "alarms",
        ],
        [
            [
                name,
                str(n["peak_memory_mb"]),
                str(n["high_watermark_mb"]),
                str(n["peak_data_mb"]),
                str(n["min_disk_free_mb"]),
                ", ".join(n["alarms"]) or "none",
            ]
            for name, n in res["broker_nodes"].items()
        ],
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
