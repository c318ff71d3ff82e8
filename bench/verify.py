"""Verify: the chunked comparison in the databases (`verify.compare`, what `bridge verify`
runs) against the whole-table checksum read through Python (`verify.verify`, what it ran
before), same data, same run.

Three PostgreSQL site databases hold the same `--rows` (1,000,000) rows of `orders` (filled
by one INSERT ... SELECT generate_series in the first, before its capture triggers exist,
then copied with CREATE DATABASE ... TEMPLATE; bridge init and install-triggers on each).
First the new comparison runs on equal sites (0 differences); then one row is changed at
MADRID behind bridge's back (`SET LOCAL bridge.applying = 'on'`: not captured) and each
round runs both: the new one must name exactly that key, the old one the table. Which one
goes first alternates by round.

Then `--repair-rows` (1,000) more rows are changed at MADRID behind bridge's back and
`bridge repair` runs (`repair.run` at PARIS, the three bridges running on the cluster in
the vhost `bridge_bench`): the comparison, the winning state of each differing key, the
repair events through `bridge.replay`, MADRID applying them, and the comparison again,
which must be clean. Its wall time and the keys repaired per second are reported.

    python -m bench.verify [--quick] [--rounds R] [--rows N] [--chunk-rows C] [--repair-rows K]

Results: bench/results/verify.json and verify.md. Nothing here asserts on time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import psycopg

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
    timed,
    write_results,
)
from bridge import repair, verify
from bridge.broker import REPLAY_EXCHANGE
from bridge.config import Config
from bridge.run import Bridge
from tests.conftest import SITES, create_site_db, make_config, pg_url, setup_site, sql

NAME = "verify"
PREFIX = "bench_vf"
TARGET_S = 60.0  # the new comparison finds the key in under a minute on this machine


def fill(rows: int) -> list[Config]:
    """The three sites, the same `rows` rows in each, bridge capturing."""
    first = f"{PREFIX}_{SITES[0].lower()}"
    create_site_db(first)
    sql(
        first,
        "INSERT INTO orders (id, customer, amount, note, updated_at, blob) "
        "SELECT g, 'customer-' || g, g / 100.0, CASE WHEN g % 10 <> 0 THEN 'note ' || g END, "
        "timestamptz '2026-01-01 00:00:00+00' + g * interval '1.000001 second', "
        "CASE WHEN g % 100 = 0 THEN decode(md5(g::text), 'hex') END "
        f"FROM generate_series(1, {rows}) AS g",
    )
    sql(first, "VACUUM ANALYZE orders")
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        for site in SITES[1:]:
            db = f"{PREFIX}_{site.lower()}"
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}" TEMPLATE "{first}"')
    cfgs = []
    for site in SITES:
        cfg = make_config(site, f"{PREFIX}_{site.lower()}")
        setup_site(cfg)
        cfgs.append(cfg)
    return cfgs


def changed_key(rows: int) -> int:
    """The row changed at MADRID: past the middle, in no particular chunk (777,777 of 1M)."""
    return rows * 7 // 9


def change_one_row(cfg: Config, key: int) -> None:
    db = cfg.database_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url(db), autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL bridge.applying = 'on'")
        conn.execute("UPDATE orders SET note = 'changed behind bridge' WHERE id = %s", (key,))
    if sql(db, "SELECT count(*) FROM bridge_outbox")[0][0]:
        raise RuntimeError("the capture took the change made behind its back")


def run_new(cfgs: list[Config], chunk_rows: int) -> tuple[float, float, verify.Comparison]:
    peers = {c.site: c.database_url for c in cfgs[1:]}
    wall, cpu, result = timed(lambda: verify.compare(cfgs[0], peers, chunk_rows=chunk_rows))
    return wall, cpu, result


def run_old(cfgs: list[Config]) -> tuple[float, float, list[str]]:
    peers = {c.site: c.database_url for c in cfgs[1:]}
    wall, cpu, (_, differing) = timed(lambda: verify.verify(cfgs[0], peers))
    return wall, cpu, differing


def run_repair(
    broker: Broker, cfgs: list[Config], rows: int, count: int, chunk_rows: int
) -> dict[str, Any]:
    """Change `count` more rows at MADRID behind bridge's back, then time `repair.run` at
    PARIS with the three bridges running: every differing key repaired, verify clean."""
    broker.ensure_ready()
    broker.fresh_topology()
    sites = [dataclasses.replace(c, amqp_url=broker.site_url(c.site)) for c in cfgs]
    db = sites[2].database_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url(db), autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL bridge.applying = 'on'")
        conn.execute(
            "UPDATE orders SET amount = -amount WHERE id %% %s = 0 AND id <= %s",
            (max(rows // count, 1), rows),
        )
    peers = {c.site: c.database_url for c in sites[1:]}
    bridges = [Bridge(c) for c in sites]
    for b in bridges:
        b.start()
    try:
        log(f"repair: {count + 1} rows changed at MADRID; repairing")
        wall, _cpu, report = timed(
            lambda: repair.run(sites[0], peers, wait=900, chunk_rows=chunk_rows, progress=False)
        )
    finally:
        for b in bridges:
            b.stop()
        with broker.admin() as ch:
            ch.exchange_delete(REPLAY_EXCHANGE)
        broker.teardown()
    keys = len(report.before.differences["orders"])
    clean = report.after is not None and report.after.ok
    log(
        f"repair: {keys} keys, {len(report.plan.fixes)} repair events, {wall:.1f} s, clean: {clean}"
    )
    if not clean:
        raise RuntimeError(f"repair left differences: {report.unapplied[:3]}")
    return {"keys": keys, "events": report.sent, "wall_s": wall, "keys_per_s": keys / wall}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument("--rows", type=int, default=None, help="rows per site (1,000,000)")
    p.add_argument("--repair-rows", type=int, default=1000, help="rows repaired (1,000)")
    p.add_argument("--chunk-rows", type=int, default=verify.DEFAULT_CHUNK_ROWS)
    args = p.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    rounds = args.rounds or (1 if args.quick else 2)
    broker = Broker(args.vhost, args.amqp_host_port)
    params = {"rows_per_site": rows, "sites": len(SITES), "chunk_rows": args.chunk_rows}
    params["rounds"] = rounds
    params["repair_rows"] = args.repair_rows + 1
    result = header(NAME, args.quick, broker, params)
    started = time.perf_counter()
    log(f"verify: filling {len(SITES)} databases with {rows:,} rows each")
    cfgs = fill(rows)
    raw: list[dict[str, Any]] = []
    try:
        equal: list[dict[str, float]] = []
        for r in range(rounds):
            wall, cpu, same = run_new(cfgs, args.chunk_rows)
            if not same.ok:
                raise RuntimeError(f"equal sites reported different: {same.to_json()}")
            equal.append({"wall_s": wall, "cpu_s": cpu})
            log(f"round {r + 1}/{rounds}, equal sites: new {wall:.1f} s")
        key = changed_key(rows)
        change_one_row(cfgs[2], key)
        for r in range(rounds):
            out: dict[str, Any] = {}
            for kind in rounds_order(r):
                if kind == "subject":
                    wall, cpu, found = run_new(cfgs, args.chunk_rows)
                    keys = [d.key for d in found.differences["orders"]]
                    if keys != [{"id": key}]:
                        raise RuntimeError(f"new verify found {keys[:5]}, not the changed key")
                    out["subject"] = {"wall_s": wall, "cpu_s": cpu, "keys": keys}
                else:
                    wall, cpu, differing = run_old(cfgs)
                    if differing != ["orders"]:
                        raise RuntimeError(f"old verify found {differing}, not orders")
                    out["baseline"] = {"wall_s": wall, "cpu_s": cpu, "tables": differing}
            out["ratio"] = out["baseline"]["wall_s"] / out["subject"]["wall_s"]
            raw.append(out)
            log(
                f"round {r + 1}/{rounds}, one row changed: new {out['subject']['wall_s']:.1f} s "
                f"(key found), old {out['baseline']['wall_s']:.1f} s (table found); "
                f"old/new {out['ratio']:.1f}"
            )
        repaired = run_repair(broker, cfgs, rows, args.repair_rows, args.chunk_rows)
    finally:
        for site in SITES:
            drop_db(f"{PREFIX}_{site.lower()}")
    new_s = median([r["subject"]["wall_s"] for r in raw])
    figures = {
        "new_one_difference_s": new_s,
        "old_one_difference_s": median([r["baseline"]["wall_s"] for r in raw]),
        "old_over_new": median([r["ratio"] for r in raw]),
        "new_no_difference_s": median([e["wall_s"] for e in equal]),
        "new_cpu_s": median([r["subject"]["cpu_s"] for r in raw]),
        "old_cpu_s": median([r["baseline"]["cpu_s"] for r in raw]),
        "repair": repaired,
        "target": f"new <= {TARGET_S:.0f} s",
        "verdict": "PASS" if new_s <= TARGET_S else "FAIL",
    }
    result.update(equal_rounds=equal, rounds=raw, figures=figures)
    result["elapsed_s"] = time.perf_counter() - started
    write_results(NAME, result, markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    p, f = result["parameters"], result["figures"]
    lines = md_header(result, "Verify: chunked checksums in the database vs whole table in Python")
    lines += [
        f"{p['sites']} PostgreSQL sites with the same {p['rows_per_site']:,}-row `orders`; "
        f"chunks of {p['chunk_rows']:,} rows; medians over {p['rounds']} round(s), old and new "
        "alternating. New: `verify.compare` (`bridge verify`), which must name the changed key "
        f"(id {changed_key(p['rows_per_site']):,}). Old: `verify.verify`, every row read "
        "through Python, one checksum per table, which names the table only.",
        "",
    ]
    lines += table(
        ["run", "wall time (s)", "CPU of this process (s)", "finds"],
        [
            ["new, equal sites", fmt(f["new_no_difference_s"], 1), "", "nothing (ok)"],
            [
                "new, one row changed",
                fmt(f["new_one_difference_s"], 1),
                fmt(f["new_cpu_s"], 1),
                "the key",
            ],
            [
                "old, one row changed",
                fmt(f["old_one_difference_s"], 1),
                fmt(f["old_cpu_s"], 1),
                "the table",
            ],
        ],
    )
    r = f["repair"]
    lines += [
        "",
        f"Old / new wall time: {f['old_over_new']:.1f}x. Target {f['target']}: {f['verdict']}.",
        "",
        f"Repair: {r['keys']:,} rows changed at MADRID behind bridge's back; `bridge repair` "
        f"(comparison, winning states, {r['events']:,} repair events through bridge.replay, "
        f"applied at MADRID, comparison again: clean) took {r['wall_s']:.1f} s, "
        f"{r['keys_per_s']:,.0f} keys/s, on {p['rows_per_site']:,} rows per site.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
