"""Bootstrap: how fast `bridge bootstrap` fills a new site, beside a plain copy.

A source site (PARIS) holds `--rows` rows of `orders` (tests/conftest.py ORDERS_DDL), each
with a row version (as if applied from another site). Each round copies the table, in
both orders alternately:
- baseline: `pg_dump --data-only --table orders <source> | psql <plain>` into a database
  with the same table and no bridge (what an operator would do by hand);
- subject: `bridge.bootstrap.bootstrap` from PARIS into a new site ROME (bridge
  initialised, capture triggers installed), `--chunk-rows` rows per transaction: the rows,
  their versions, the progress record.
Both targets are emptied (TRUNCATE) before each run. The broker side is only the passive
look at the queues (the source's queue is empty and has no consumer: no wait).

    python -m bench.bootstrap [--quick] [--rounds R] [--rows N] [--chunk-rows C]
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from typing import Any

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
    rounds_order,
    table,
    write_results,
)
from bridge import bootstrap, topology
from bridge.config import Config
from tests.conftest import (
    ARCHIVE,
    SITES,
    create_site_db,
    make_config,
    pg_url,
    setup_site,
    sql,
    truncate,
)

NAME = "bootstrap"
PREFIX = "bs_bench_boot"
SOURCE_DB, NEW_DB, PLAIN_DB = f"{PREFIX}_paris", f"{PREFIX}_rome", f"{PREFIX}_plain"
DEFAULT_VHOST = "bs_bench_boot"
FILL = f"""
INSERT INTO orders (id, customer, amount, note, updated_at, blob)
SELECT i, 'customer-' || lpad((i % 1000)::text, 4, '0'), (i % 10000) + 0.25,
       'order ' || i || ': 3 items, deliver before noon',
       timestamptz '2026-01-01 12:00Z' + i * interval '1 second',
       decode(lpad(to_hex(i), 16, '0') || lpad(to_hex(i), 16, '0'), 'hex')
  FROM generate_series(1, {{rows}}) AS i
-- {PREFIX}
"""
VERSIONS = """
INSERT INTO bridge_row_version (table_name, row_key, ts, origin, deleted, event_id)
SELECT 'orders', jsonb_build_object('id', id), updated_at, 'LONDON', false, gen_random_uuid()
  FROM orders
"""


def fill_source(rows: int) -> None:
    """The rows and their versions, written in a marked transaction (not captured)."""
    with_marked = f"SET LOCAL bridge.applying = 'on'; {FILL.format(rows=rows)}; {VERSIONS}"
    sql(SOURCE_DB, f"BEGIN; {with_marked}; COMMIT")
    sql(SOURCE_DB, "VACUUM ANALYZE orders")
    sql(SOURCE_DB, "VACUUM ANALYZE bridge_row_version")


def run_plain() -> float:
    truncate(PLAIN_DB, "orders")
    checkpoint()
    t0 = time.perf_counter()
    dump = subprocess.Popen(
        ["pg_dump", "--data-only", "--table", "orders", pg_url(SOURCE_DB)],
        stdout=subprocess.PIPE,
    )
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", pg_url(PLAIN_DB)],
        stdin=dump.stdout,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    assert dump.wait() == 0
    return time.perf_counter() - t0


def run_bootstrap(new: Config, chunk_rows: int) -> float:
    truncate(NEW_DB, "orders, bridge_row_version")
    sql(NEW_DB, "DELETE FROM bridge_meta WHERE key = 'bootstrap'")
    checkpoint()
    t0 = time.perf_counter()
    report = bootstrap.bootstrap(new, "PARIS", pg_url(SOURCE_DB), chunk_rows=chunk_rows)
    elapsed = time.perf_counter() - t0
    assert not report.resumed and report.total > 0
    return elapsed


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.set_defaults(vhost=DEFAULT_VHOST)
    p.add_argument("--rows", type=int, default=None, help="rows of the source table")
    p.add_argument("--chunk-rows", type=int, default=5000, help="rows per transaction")
    args = p.parse_args(argv)
    quick: bool = args.quick
    rounds = args.rounds or (1 if quick else 3)
    rows = args.rows or (50_000 if quick else 200_000)
    broker = Broker(args.vhost, args.amqp_host_port)
    broker.ensure_ready()
    four = (*SITES, "ROME")
    broker._cluster("add-site-user", "ROME", "rome-secret")  # noqa: SLF001 - same script
    with broker.admin() as ch:
        topology.apply(ch, four, ARCHIVE)
    params = {"rounds": rounds, "rows": rows, "chunk_rows": args.chunk_rows}
    result = header(NAME, quick, broker, params)
    started = time.perf_counter()
    log(f"bootstrap: creating {SOURCE_DB} ({rows:,} rows), {NEW_DB} and {PLAIN_DB}")
    create_site_db(SOURCE_DB)
    create_site_db(NEW_DB)
    create_site_db(PLAIN_DB)
    source = make_config("PARIS", SOURCE_DB, sites=list(four))
    new = make_config("ROME", NEW_DB, sites=list(four), amqp_url=broker.site_url("ROME"))
    setup_site(source)
    setup_site(new)
    try:
        fill_source(rows)
        raw: list[dict[str, float]] = []
        for r in range(rounds):
            got: dict[str, float] = {}
            for kind in rounds_order(r):
                seconds = run_plain() if kind == "baseline" else run_bootstrap(new, args.chunk_rows)
                got[kind] = seconds
                log(
                    f"bootstrap round {r + 1}: {kind} {seconds:.2f}s ({rows / seconds:,.0f} rows/s)"
                )
            raw.append(got)
        copied = sql(NEW_DB, "SELECT count(*) FROM orders")[0][0]
        versions = sql(NEW_DB, "SELECT count(*) FROM bridge_row_version")[0][0]
        assert copied == rows and versions == rows, (copied, versions)
    finally:
        for db in (SOURCE_DB, NEW_DB, PLAIN_DB):
            drop_db(db)
        broker.teardown()
        with broker.admin() as ch:
            ch.queue_delete("SITE_ROME")
            ch.queue_delete("SITE_ROME.dlq")
    plain = median([rows / g["baseline"] for g in raw])
    boot = median([rows / g["subject"] for g in raw])
    ratio = median([g["baseline"] / g["subject"] for g in raw])
    result["elapsed_s"] = time.perf_counter() - started
    result["rounds"] = raw
    result["rows_per_s"] = {"pg_dump_psql": plain, "bridge_bootstrap": boot, "ratio": ratio}
    md = md_header(
        result, "Bootstrap: bridge bootstrap vs pg_dump | psql (PostgreSQL -> PostgreSQL)"
    )
    md += table(
        ["copy", "rows", "rows/s (median)", "seconds per round"],
        [
            [
                "pg_dump --data-only \\| psql",
                f"{rows:,}",
                fmt(plain),
                ", ".join(f"{g['baseline']:.2f}" for g in raw),
            ],
            [
                f"bridge bootstrap (--chunk-rows {args.chunk_rows})",
                f"{rows:,}",
                fmt(boot),
                ", ".join(f"{g['subject']:.2f}" for g in raw),
            ],
        ],
    )
    md += [
        "",
        f"bridge bootstrap copies at {ratio:.2f} x the rate of pg_dump | psql (median of "
        "per-round ratios). Per chunk it reads the rows at the source as the capture sends "
        "them (JSON, with each row's version from bridge_row_version and the outbox), parses "
        "them in Python as events are (bridge/codec.py), and writes them with their "
        "versions in one set-based statement (apply_write_many: two rows and their indexes "
        "per copied row) in a marked transaction that also records its progress; "
        "pg_dump | psql is one COPY out and one COPY in. The machine is shared: the load "
        "at start is in the header, and the seconds of every round are listed.",
    ]
    write_results(NAME, result, "\n".join(md))
    return result


if __name__ == "__main__":
    main()
