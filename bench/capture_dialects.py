"""Capture overhead per dialect, in one run: what the capture triggers cost an application
on PostgreSQL and on MariaDB, each against the same database without bridge.

For each dialect, two databases with the same `orders` table (tests/dbs.py ORDERS): one
plain, one with `bridge init` and the capture triggers. Each round times, in both, N
single-row INSERT transactions and M INSERT statements of 100 rows (one transaction each)
from `--clients` connections; baseline and subject alternate which goes first. The ratio
(rows/s with triggers / rows/s without) is the figure: 1.0 means free. No dispatcher runs
(the cost to the writers is measured; the outbox is emptied between runs).

    python -m bench.capture_dialects [--quick] [--rounds R] [--clients C]
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from bench.common import (
    Broker,
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
from tests import dbs
from tests.conftest import make_config, truncate
from tests.federation import setup_site

NAME = "capture_dialects"
DIALECTS = ("postgresql", "mariadb")
ROWS_PER_STATEMENT = 100
COLUMNS = "id, customer, amount, note, updated_at, data"
Row = tuple[Any, ...]


def make_rows(n: int) -> list[Row]:
    at = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    return [
        (i, f"customer {i % 97}", Decimal(i % 10_000) / 100, "note é ✓", at, b"\x00\xff")
        for i in range(1, n + 1)
    ]


def reset(dialect: str, db: str, captured: bool) -> None:
    """Empty the table (and the outbox) without capturing it: PostgreSQL's capture refuses a
    TRUNCATE unless marked as bridge's own (tests/conftest.py truncate); MariaDB fires no
    trigger on one."""
    tables = "orders, bridge_outbox" if captured else "orders"
    if dialect == "postgresql":
        truncate(db, tables)
    else:
        for table in tables.split(", "):
            dbs.sql(dialect, db, f"TRUNCATE {table}")


def _clients(dialect: str, db: str, work: Sequence[Sequence[Row]], single: bool) -> float:
    """Rows per second of `work` (one list per client) run at once."""
    marks = ", ".join(["%s"] * 6)
    start = threading.Barrier(len(work) + 1)
    done: list[float] = []

    def client(rows: Sequence[Row]) -> None:
        with dbs.connection(dialect, db) as conn:
            cur = conn.cursor()
            start.wait()
            if single:
                for row in rows:
                    cur.execute(f"INSERT INTO orders ({COLUMNS}) VALUES ({marks})", row)
            else:
                values = ", ".join([f"({marks})"] * ROWS_PER_STATEMENT)
                text = f"INSERT INTO orders ({COLUMNS}) VALUES {values}"
                for n in range(0, len(rows), ROWS_PER_STATEMENT):
                    chunk = rows[n : n + ROWS_PER_STATEMENT]
                    cur.execute(text, [v for row in chunk for v in row])
        done.append(time.perf_counter())

    threads = [threading.Thread(target=client, args=(w,)) for w in work]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return sum(len(w) for w in work) / (max(done) - began)


def split(rows: Sequence[Row], clients: int, unit: int) -> list[Sequence[Row]]:
    per = (len(rows) // clients) // unit * unit
    return [rows[i * per : (i + 1) * per] for i in range(clients)]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument("--clients", type=int, default=1, help="client connections (default 1)")
    args = p.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    n_single = 3000 if args.quick else 8000
    n_multi = 200 * ROWS_PER_STATEMENT if args.quick else 600 * ROWS_PER_STATEMENT
    broker = Broker(args.vhost, args.amqp_host_port)
    broker.ensure_ready()
    params = {
        "rounds": rounds,
        "single_row_transactions": n_single,
        "rows_in_100_row_statements": n_multi,
        "client_connections": args.clients,
        "dialects": ", ".join(DIALECTS),
    }
    result = header(NAME, args.quick, broker, params)
    started = time.perf_counter()
    result["mariadb"] = dict(
        zip(
            ("version", "innodb_flush_log_at_trx_commit", "sync_binlog", "log_bin"),
            dbs.sql(
                "mariadb",
                "mysql",
                "SELECT @@version, @@innodb_flush_log_at_trx_commit, @@sync_binlog, @@log_bin",
            )[0],
            strict=True,
        )
    )
    rows = make_rows(max(n_single, n_multi))
    names = {d: (f"bench_cd_plain_{d[:5]}", f"bench_cd_trig_{d[:5]}") for d in DIALECTS}
    for dialect, (plain, trig) in names.items():
        log(f"{NAME}: creating {plain} and {trig}")
        dbs.create(dialect, plain, dbs.ORDERS[dialect])
        dbs.create(dialect, trig, dbs.ORDERS[dialect])
        setup_site(make_config("PARIS", trig, database_url=dbs.url(dialect, trig)))
    figures: dict[str, dict[str, list[float]]] = {
        d: {k: [] for k in ("plain_single", "trig_single", "plain_multi", "trig_multi")}
        for d in DIALECTS
    }
    for r in range(rounds):
        for dialect, (plain, trig) in names.items():
            for kind in rounds_order(r):
                db, captured = (trig, True) if kind == "subject" else (plain, False)
                prefix = "trig" if captured else "plain"
                reset(dialect, db, captured)
                single = _clients(dialect, db, split(rows[:n_single], args.clients, 1), single=True)
                reset(dialect, db, captured)
                multi = _clients(
                    dialect, db, split(rows[:n_multi], args.clients, ROWS_PER_STATEMENT), False
                )
                figures[dialect][f"{prefix}_single"].append(single)
                figures[dialect][f"{prefix}_multi"].append(multi)
                log(
                    f"{NAME}: round {r + 1} {dialect} {prefix}: single {single:.0f} rows/s, "
                    f"100-row {multi:.0f} rows/s"
                )
    summary = {}
    for dialect, f in figures.items():
        s = {k: median(v) for k, v in f.items()}
        s["ratio_single"] = s["trig_single"] / s["plain_single"]
        s["ratio_multi"] = s["trig_multi"] / s["plain_multi"]
        summary[dialect] = s
    result["results"] = summary
    result["elapsed_s"] = time.perf_counter() - started
    result["raw"] = figures
    write_results(NAME, result, markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = md_header(result, "Capture overhead per dialect (same run)")
    maria = result["mariadb"]
    lines.insert(
        -2,
        f"- MariaDB {maria['version']} (innodb_flush_log_at_trx_commit="
        f"{maria['innodb_flush_log_at_trx_commit']}, log_bin={maria['log_bin']}), "
        "on the same machine",
    )
    rows = []
    for dialect, s in result["results"].items():
        rows.append(
            [
                dialect,
                fmt(s["plain_single"]),
                fmt(s["trig_single"]),
                fmt(s["ratio_single"], 3),
                fmt(s["plain_multi"]),
                fmt(s["trig_multi"]),
                fmt(s["ratio_multi"], 3),
            ]
        )
    lines += table(
        [
            "dialect",
            "single-row tx/s, plain",
            "with capture",
            "ratio",
            "rows/s in 100-row statements, plain",
            "with capture",
            "ratio",
        ],
        rows,
    )
    lines += [
        "",
        "Medians of the rounds. PostgreSQL captures with statement-level triggers (one outbox "
        "INSERT per statement); MariaDB with row-level triggers (one per row): a 100-row "
        "statement runs its trigger 100 times.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
