"""Capture: what the triggers cost a writer.

Two databases with the same `orders` table (tests/conftest.py ORDERS_DDL): `bench_capture_plain`
without bridge, `bench_capture_trig` with `bridge init` and the capture triggers. Each round
times, in both, N single-row INSERT transactions (autocommit, prepared statement) and M
INSERT statements of 100 rows each (multi-VALUES, one transaction each), from one client
connection (or `--clients`). Both tables (and the outbox) are truncated and a CHECKPOINT is
taken before every timed run; baseline and subject alternate which goes first.

With `--dispatcher`, a stand-in dispatcher runs beside the writers of the triggers'
database: it follows `bridge run`'s wake-up protocol (sql_templates/postgresql/_wakeup.sql.j2:
LISTEN, read the outbox to its end, take the wake-up lock, wait for a notification) and
deletes what it reads, as the rows' echoes would; without it, nobody waits and no capture
notifies. (No broker: what is measured is the cost to the writers.)

    python -m bench.capture [--quick] [--rounds R] [--clients C] [--dispatcher]
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg

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
    ratio_result,
    rounds_order,
    table,
    write_results,
)
from bridge.dialects import for_url
from tests.conftest import create_site_db, make_config, pg_url, setup_site, sql, truncate

NAME = "capture"
PLAIN_DB, TRIG_DB = "bench_capture_plain", "bench_capture_trig"
# issue 7's aims: 0.75 at 1 client, 0.7 at 8 (what a minimal trigger reaches), 0.45 rows/s
TARGET_MULTI = 0.45


def target_single(clients: int) -> float:
    return 0.75 if clients == 1 else 0.7


ROWS_PER_STATEMENT = 100
COLUMNS = "id, customer, amount, note, updated_at, blob"
INSERT_ONE = f"INSERT INTO orders ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"


def insert_many(rows: int) -> str:
    """One INSERT statement of `rows` rows."""
    return f"INSERT INTO orders ({COLUMNS}) VALUES " + ", ".join(
        ["(%s, %s, %s, %s, %s, %s)"] * rows
    )


INSERT_MANY = insert_many(ROWS_PER_STATEMENT)

Row = tuple[int, str, Decimal, str, dt.datetime, bytes]


def make_rows(n: int, first: int = 1) -> list[Row]:
    """Rows like the integration tests': text, numeric, timestamptz and a little bytea."""
    at = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    return [
        (
            i,
            f"customer-{i % 1000:04d}",
            Decimal(f"{i % 10000}.25"),
            f"order {i}: 3 items, deliver before noon",
            at + dt.timedelta(seconds=i),
            i.to_bytes(8, "big") * 2,
        )
        for i in range(first, first + n)
    ]


def reset(db: str) -> None:
    has_outbox = sql(db, "SELECT to_regclass('bridge_outbox') IS NOT NULL")[0][0]
    truncate(db, f"{'orders, bridge_outbox' if has_outbox else 'orders'} RESTART IDENTITY")


def _run_clients(db: str, work: Sequence[Sequence[Any]], single: bool) -> float:
    """Run each client's list of statements' params on its own connection; wall seconds
    from the moment all clients are connected until the last one is done."""
    start = threading.Barrier(len(work) + 1)
    errors: list[BaseException] = []
    query = INSERT_ONE if single else INSERT_MANY

    def client(items: Sequence[Any]) -> None:
        try:
            with psycopg.connect(pg_url(db), autocommit=True) as conn, conn.cursor() as cur:
                cur.execute(query, items[0], prepare=True)  # prepared before the clock starts
                start.wait()
                for params in items[1:]:
                    cur.execute(query, params, prepare=True)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=client, args=(w,)) for w in work]
    for t in threads:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        for t in threads:
            t.join()
        raise errors[0] if errors else RuntimeError("a client failed") from None
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return elapsed


@contextmanager
def stand_in_dispatcher(db: str) -> Iterator[dict[str, int]]:
    """A thread that reads (and deletes) the outbox as the dispatcher would, waiting for
    captures' notifications with the wake-up lock when it has read it to its end; yields
    its counts (reads, waits, notifications)."""
    dialect = for_url(pg_url(db))
    wait, woken = dialect.render("dispatcher_wait"), dialect.render("dispatcher_woken")
    take = (
        "DELETE FROM bridge_outbox WHERE seq IN "
        "(SELECT seq FROM bridge_outbox ORDER BY seq LIMIT 1000) RETURNING seq"
    )
    stop = threading.Event()
    counts = {"reads": 0, "waits": 0, "notifications": 0}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(pg_url(db), autocommit=True) as conn:
                conn.execute("LISTEN bridge_outbox")
                waiting = False
                while not stop.is_set():
                    counts["reads"] += 1
                    if conn.execute(take).fetchall():
                        if waiting:
                            conn.execute(woken)
                            waiting = False
                    elif waiting:
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            counts["notifications"] += 1
                    elif conn.execute(wait).fetchone() == (True,):
                        waiting = True  # read once more, then wait
                        counts["waits"] += 1
                    else:
                        time.sleep(0.02)  # a capturing transaction is open
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="stand-in-dispatcher")
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(30)
    if errors:
        raise errors[0]


def split(items: Sequence[Any], clients: int) -> list[Sequence[Any]]:
    return [items[i::clients] for i in range(clients)]


def run_single(db: str, rows: Sequence[Row], clients: int) -> float:
    """Single-row transactions per second (the first one of each client is not timed)."""
    reset(db)
    checkpoint()
    parts = split(rows, clients)
    elapsed = _run_clients(db, parts, single=True)
    return sum(len(p) - 1 for p in parts) / elapsed


def run_multi(db: str, rows: Sequence[Row], clients: int) -> float:
    """Rows per second written by 100-row INSERT statements (one transaction each)."""
    reset(db)
    checkpoint()
    statements = [
        [v for row in rows[i : i + ROWS_PER_STATEMENT] for v in row]
        for i in range(0, len(rows), ROWS_PER_STATEMENT)
    ]
    parts = split(statements, clients)
    elapsed = _run_clients(db, parts, single=False)
    return sum(len(p) - 1 for p in parts) * ROWS_PER_STATEMENT / elapsed


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument("--single", type=int, default=None, help="single-row transactions per run")
    p.add_argument("--statements", type=int, default=None, help="100-row statements per run")
    p.add_argument("--clients", type=int, default=1, help="client connections (default 1)")
    p.add_argument(
        "--dispatcher",
        action="store_true",
        help="a stand-in dispatcher waits for the captures' wake-ups (see above)",
    )
    args = p.parse_args(argv)
    quick: bool = args.quick
    rounds = args.rounds or (3 if quick else 5)
    n_single = args.single or (6000 if quick else 15000)
    n_statements = args.statements or (500 if quick else 1200)
    clients: int = args.clients
    broker = Broker(args.vhost, args.amqp_host_port)
    broker.ensure_ready()  # only for the facts (RabbitMQ version) in the results
    params = {
        "rounds": rounds,
        "single_row_transactions": n_single,
        "multi_row_statements": n_statements,
        "rows_per_statement": ROWS_PER_STATEMENT,
        "client_connections": clients,
        "commit": "autocommit, one transaction per statement",
        "listener": (
            "a stand-in dispatcher (wake-up protocol, deletes what it reads)"
            if args.dispatcher
            else "none (no dispatcher LISTENs during the capture benchmark)"
        ),
    }
    result = header(NAME, quick, broker, params)
    started = time.perf_counter()

    log(f"capture: creating {PLAIN_DB} and {TRIG_DB}")
    create_site_db(PLAIN_DB)
    create_site_db(TRIG_DB)
    setup_site(make_config("PARIS", TRIG_DB))
    rows = make_rows(max(n_single + clients, (n_statements + clients) * ROWS_PER_STATEMENT))
    try:
        for db in (PLAIN_DB, TRIG_DB):  # warm-up: caches, plans, the WAL
            run_single(db, rows[:300], clients)
            run_multi(db, rows[: 20 * ROWS_PER_STATEMENT], clients)
        raw: list[dict[str, Any]] = []
        dbs = {"baseline": PLAIN_DB, "subject": TRIG_DB}

        @contextmanager
        def beside(kind: str) -> Iterator[None]:
            if kind != "subject" or not args.dispatcher:
                yield
                return
            with stand_in_dispatcher(TRIG_DB) as counts:
                yield
            log(f"capture: stand-in dispatcher {counts}")

        for r in range(rounds):
            got: dict[str, float] = {}
            for kind in rounds_order(r):
                with beside(kind):
                    got[f"single_{kind}"] = run_single(
                        dbs[kind], rows[: n_single + clients], clients
                    )
            for kind in rounds_order(r + 1):
                with beside(kind):
                    got[f"multi_{kind}"] = run_multi(
                        dbs[kind], rows[: (n_statements + clients) * ROWS_PER_STATEMENT], clients
                    )
            entry = {
                "round": r + 1,
                "single_plain_tps": round(got["single_baseline"], 1),
                "single_triggers_tps": round(got["single_subject"], 1),
                "single_ratio": round(got["single_subject"] / got["single_baseline"], 4),
                "multi_plain_rows_per_s": round(got["multi_baseline"], 1),
                "multi_triggers_rows_per_s": round(got["multi_subject"], 1),
                "multi_ratio": round(got["multi_subject"] / got["multi_baseline"], 4),
            }
            raw.append(entry)
            log(
                f"capture round {r + 1}/{rounds}: single {entry['single_triggers_tps']:.0f}/"
                f"{entry['single_plain_tps']:.0f} tx/s = {entry['single_ratio']:.3f}; 100-row "
                f"{entry['multi_triggers_rows_per_s']:.0f}/{entry['multi_plain_rows_per_s']:.0f}"
                f" rows/s = {entry['multi_ratio']:.3f}"
            )
    finally:
        drop_db(PLAIN_DB)
        drop_db(TRIG_DB)

    def med(key: str) -> float:
        return median([e[key] for e in raw])

    single_ratio, multi_ratio = med("single_ratio"), med("multi_ratio")
    result["rounds"] = raw
    result["medians"] = {
        k: med(k)
        for k in (
            "single_plain_tps",
            "single_triggers_tps",
            "multi_plain_rows_per_s",
            "multi_triggers_rows_per_s",
        )
    }
    result["results"] = {
        "single_row": ratio_result(
            single_ratio,
            med("single_triggers_tps"),
            med("single_plain_tps"),
            target_single(clients),
        ),
        "multi_row_100": ratio_result(
            multi_ratio,
            med("multi_triggers_rows_per_s"),
            med("multi_plain_rows_per_s"),
            TARGET_MULTI,
        ),
    }
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    # one result file per number of client connections: capture.md (1), capture_clients8.md
    name = NAME if clients == 1 else f"{NAME}_clients{clients}"
    write_results(f"{name}_dispatcher" if args.dispatcher else name, result, markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    res, m = result["results"], result["medians"]
    lines = md_header(result, "Capture: insert rate with triggers vs. without")
    lines += [
        f"Client connections: {result['parameters']['client_connections']}, autocommit, "
        "prepared statements; ratio = median over rounds of (with triggers / without), "
        "baseline and subject interleaved, tables truncated and CHECKPOINT before each run.",
        "",
    ]
    lines += table(
        ["workload", "without triggers", "with triggers", "ratio (median)", "target", "verdict"],
        [
            [
                "single-row INSERT transactions",
                f"{fmt(m['single_plain_tps'])} tx/s",
                f"{fmt(m['single_triggers_tps'])} tx/s",
                fmt(res["single_row"]["ratio"], 3),
                res["single_row"]["target"],
                res["single_row"]["verdict"],
            ],
            [
                "100-row INSERT statements",
                f"{fmt(m['multi_plain_rows_per_s'])} rows/s",
                f"{fmt(m['multi_triggers_rows_per_s'])} rows/s",
                fmt(res["multi_row_100"]["ratio"], 3),
                res["multi_row_100"]["target"],
                res["multi_row_100"]["verdict"],
            ],
        ],
    )
    lines += ["", "Rounds:", ""]
    lines += table(
        ["round", "single plain", "single trig", "ratio", "100-row plain", "100-row trig", "ratio"],
        [
            [
                e["round"],
                fmt(e["single_plain_tps"]),
                fmt(e["single_triggers_tps"]),
                fmt(e["single_ratio"], 3),
                fmt(e["multi_plain_rows_per_s"]),
                fmt(e["multi_triggers_rows_per_s"]),
                fmt(e["multi_ratio"], 3),
            ]
            for e in result["rounds"]
        ],
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
