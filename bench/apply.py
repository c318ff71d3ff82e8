"""Apply: the set-based path (bridge/bulk.py) against every event alone, same events, one run.

A source site's application inserts N rows in one statement and then updates them (its
capture triggers write 2N events, read back as the dispatcher reads them); each round, two
fresh copies of a destination site (bridge init, capture triggers) apply them through a
real `Applier` on one connection, in consumer batches of `--batch` events (as `bridge run`
applies a batch of messages): baseline with `set_based=False` (every event alone: claim,
write, confirm, two or three statements each), subject with bridge's default. Inserts and
updates are timed apart. Then the set-based run's destination must equal the baseline's
(rows and versions). Which one goes first alternates by round.

    python -m bench.apply [--quick] [--rounds R] [--events N] [--batch B]

Results: bench/results/apply.json and apply.md. Nothing here asserts on time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bench.common import (
    Broker,
    drop_db,
    fmt,
    header,
    log,
    md_header,
    median,
    parser,
    rounds_order,
    table,
    write_results,
)
from bridge import wire
from bridge.apply import Applier
from bridge.dialects import for_url
from bridge.dispatcher import message
from bridge.event import Event
from tests.conftest import create_site_db, make_config, setup_site, sql

NAME = "apply"
SOURCE = "bench_apply_src"


def events(n: int) -> list[Event]:
    create_site_db(SOURCE)
    setup_site(make_config("LONDON", SOURCE))
    sql(
        SOURCE,
        "INSERT INTO orders (id, customer, amount, note, updated_at, blob) "
        "SELECT g, 'customer-' || g, g / 100.0, 'note ' || g, now(), '\\x00ff'::bytea "
        f"FROM generate_series(1, {n}) AS g",
    )
    sql(SOURCE, "UPDATE orders SET amount = amount + 1, note = note || ' (updated)'")
    rows = sql(
        SOURCE,
        "SELECT seq, event_id::text, created_at, origin, type, payload::text "
        "FROM bridge_outbox ORDER BY seq",
    )
    return [wire.decode(message(r, "london")[0])[0] for r in rows]


def apply_all(db: str, batch: Sequence[Event], size: int, set_based: bool) -> dict[str, float]:
    create_site_db(db)
    cfg = make_config("MADRID", db)
    setup_site(cfg)
    applier = Applier(cfg, for_url(cfg.database_url), set_based=set_based)
    half = len(batch) // 2
    rates: dict[str, float] = {}
    try:
        for label, part in (("insert", batch[:half]), ("update", batch[half:])):
            t0 = time.perf_counter()
            for i in range(0, len(part), size):
                outcomes = applier.apply_batch(part[i : i + size])
                if any(o.status != "applied" for o in outcomes):
                    raise RuntimeError(
                        f"not applied: {[o for o in outcomes if o.status != 'applied'][:3]}"
                    )
            rates[label] = len(part) / (time.perf_counter() - t0)
    finally:
        applier.close()
    return rates


def state(db: str) -> list[Any]:
    return sql(db, "SELECT * FROM orders ORDER BY id") + sql(
        db, "SELECT row_key::text, ts, origin, deleted FROM bridge_row_version ORDER BY 1"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument("--events", type=int, default=None, help="rows inserted then updated (20,000)")
    p.add_argument("--batch", type=int, default=1000, help="events per apply batch (1,000)")
    args = p.parse_args(argv)
    n = args.events or (4000 if args.quick else 20_000)
    rounds = args.rounds or (2 if args.quick else 4)
    broker = Broker(args.vhost, args.amqp_host_port)
    params = {"rows": n, "events": 2 * n, "batch_events": args.batch, "rounds": rounds}
    result = header(NAME, args.quick, broker, params)
    log(f"apply: {2 * n} events from a {n}-row insert and update")
    started = time.perf_counter()
    every = events(n)
    raw: list[dict[str, Any]] = []
    dbs = {"baseline": "bench_apply_alone", "subject": "bench_apply_set"}
    try:
        for r in range(rounds):
            out: dict[str, Any] = {}
            for kind in rounds_order(r):
                out[kind] = apply_all(dbs[kind], every, args.batch, kind == "subject")
            out["same_result"] = state(dbs["baseline"]) == state(dbs["subject"])
            raw.append(out)
            log(
                f"round {r + 1}/{rounds}: inserts {out['subject']['insert']:.0f}/s set-based vs "
                f"{out['baseline']['insert']:.0f}/s alone, updates {out['subject']['update']:.0f}"
                f"/s vs {out['baseline']['update']:.0f}/s; same result: {out['same_result']}"
            )
    finally:
        for db in (*dbs.values(), SOURCE):
            drop_db(db)
    figures = {}
    for label in ("insert", "update"):
        subject = median([r["subject"][label] for r in raw])
        baseline = median([r["baseline"][label] for r in raw])
        ratio = median([r["subject"][label] / r["baseline"][label] for r in raw])
        figures[label] = {"set_based_per_s": subject, "alone_per_s": baseline, "ratio": ratio}
    result.update(rounds=raw, figures=figures, same_result=all(r["same_result"] for r in raw))
    result["elapsed_s"] = time.perf_counter() - started
    write_results(NAME, result, markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    p, f = result["parameters"], result["figures"]
    lines = md_header(result, "Apply: set-based runs vs every event alone")
    lines += [
        f"{p['events']:,} events ({p['rows']:,}-row insert, then update of every row) applied "
        f"by one `Applier` on one connection in batches of {p['batch_events']:,}; medians over "
        f"{p['rounds']} rounds. Same rows and versions at the end: {result['same_result']}.",
        "",
    ]
    lines += table(
        ["events", "set-based (events/s)", "every event alone (events/s)", "ratio"],
        [
            [
                label,
                fmt(f[label]["set_based_per_s"]),
                fmt(f[label]["alone_per_s"]),
                f"{f[label]['ratio']:.2f}",
            ]
            for label in ("insert", "update")
        ],
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
