"""Replay: archived events sent again to one site, against the same events reaching it the
normal way, same run.

MADRID's application inserts N rows in one statement and updates them (2N events, read
from its outbox as its dispatcher reads them); PARIS's archive holds them. Each round, a
fresh LONDON (bridge init, capture triggers) with its bridge running takes the 2N events:
- baseline: published by MADRID's broker user to `bridge.events` in messages of 100
  events, as MADRID's dispatcher sends them (the fanout also fills the other queues,
  purged after the round);
- subject: `bridge replay --to LONDON` at PARIS: read from `bridge_archive`, sent through
  `bridge.replay` to LONDON's queue only.
Each is timed from the first publish to the last event in LONDON's inbox. Which one goes
first alternates by round.

    python -m bench.replay [--quick] [--rounds R] [--events N]

Results: bench/results/replay.json and replay.md. Nothing here asserts on time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pika

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
    site_configs,
    table,
    write_results,
)
from bridge import replay, wire
from bridge.archive import Archiver
from bridge.broker import EVENTS_EXCHANGE, REPLAY_EXCHANGE
from bridge.config import Config
from bridge.dialects import for_url
from bridge.dispatcher import message
from bridge.event import Event
from bridge.run import Bridge
from tests.conftest import create_site_db, db_of, setup_site, sql

NAME = "replay"
PREFIX = "bench_replay"
TIMEOUT = 900.0


def madrid_events(madrid: Config, n: int) -> list[Event]:
    db = db_of(madrid)
    sql(
        db,
        "INSERT INTO orders (id, customer, amount, note, updated_at) "
        "SELECT g, 'customer-' || g, g / 100.0, 'note ' || g, now() "
        f"FROM generate_series(1, {n}) AS g",
    )
    sql(db, "UPDATE orders SET amount = amount + 1, note = note || ' (updated)'")
    rows = sql(
        db,
        "SELECT seq, event_id::text, created_at, origin, type, payload::text "
        "FROM bridge_outbox ORDER BY seq",
    )
    return [wire.decode(message(r, "madrid")[0])[0] for r in rows]


def archive(paris: Config, every: Sequence[Event]) -> None:
    archiver = Archiver(paris, for_url(paris.database_url))
    try:
        for i in range(0, len(every), 1000):
            archiver.apply_batch(every[i : i + 1000])
    finally:
        archiver.close()


def fresh_london(london: Config) -> None:
    create_site_db(db_of(london))
    setup_site(london)


def inbox(london: Config) -> int:
    return int(sql(db_of(london), "SELECT count(*) FROM bridge_inbox")[0][0])


def publish_as_madrid(broker: Broker, every: Sequence[Event]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker.site_url("MADRID")))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(0, len(every), 100):
            batch = every[i : i + 100]
            first = batch[0]
            props = pika.BasicProperties(
                message_id=first.id,
                type=wire.BATCH_TYPE,
                content_type="application/json",
                delivery_mode=2,
                user_id="madrid",
                headers={"x-bridge-events": len(batch)},
            )
            ch.basic_publish(EVENTS_EXCHANGE, "", wire.encode_events(batch), props)
    finally:
        conn.close()


def take(london: Config, n: int, send: Any) -> float:
    """Events/s from the start of `send()` to the n-th event in LONDON's inbox."""
    bridge = Bridge(london)
    bridge.start()
    try:
        t0 = time.perf_counter()
        send()
        deadline = time.monotonic() + TIMEOUT
        while inbox(london) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"LONDON took {inbox(london)} of {n} events in {TIMEOUT:.0f}s")
            time.sleep(0.05)
        return n / (time.perf_counter() - t0)
    finally:
        bridge.stop()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument("--events", type=int, default=None, help="rows inserted then updated (20,000)")
    args = p.parse_args(argv)
    n = args.events or (2000 if args.quick else 20_000)
    rounds = args.rounds or (2 if args.quick else 3)
    broker = Broker(args.vhost, args.amqp_host_port)
    broker.ensure_ready()
    broker.fresh_topology()
    params = {"rows": n, "events": 2 * n, "rounds": rounds}
    result = header(NAME, args.quick, broker, params)
    started = time.perf_counter()
    paris, london, madrid = site_configs(broker, PREFIX)
    raw: list[dict[str, float]] = []
    try:
        log(f"replay: {2 * n} events from a {n}-row insert and update at MADRID")
        every = madrid_events(madrid, n)
        archive(paris, every)
        sends = {
            "baseline": lambda: publish_as_madrid(broker, every),
            "subject": lambda: replay.replay(paris, replay.Selection("LONDON"), progress=False),
        }
        for r in range(rounds):
            out: dict[str, float] = {}
            for kind in rounds_order(r):
                fresh_london(london)
                out[kind] = take(london, len(every), sends[kind])
                broker.purge()
            raw.append(out)
            log(
                f"round {r + 1}/{rounds}: replay {out['subject']:.0f} events/s, normal delivery "
                f"{out['baseline']:.0f} events/s"
            )
    finally:
        for cfg in (paris, london, madrid):
            drop_db(db_of(cfg))
        broker.teardown()
        with broker.admin() as ch:
            ch.exchange_delete(REPLAY_EXCHANGE)
    subject = median([r["subject"] for r in raw])
    baseline = median([r["baseline"] for r in raw])
    ratio = median([r["subject"] / r["baseline"] for r in raw])
    result.update(
        rounds=raw,
        figures={"replay_per_s": subject, "normal_per_s": baseline, "ratio": ratio},
        elapsed_s=time.perf_counter() - started,
    )
    write_results(NAME, result, markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    p, f = result["parameters"], result["figures"]
    lines = md_header(result, "Replay: archived events sent again to one site")
    lines += [
        f"{p['events']:,} events ({p['rows']:,}-row insert at MADRID, then an update of every "
        "row) taken by a fresh LONDON with its bridge running, timed from the first publish "
        f"to the last event in LONDON's inbox; medians over {p['rounds']} rounds.",
        "",
    ]
    lines += table(
        ["path", "events/s"],
        [
            ["replay: PARIS's archive -> bridge.replay -> LONDON", fmt(f["replay_per_s"])],
            ["normal: MADRID -> bridge.events (fanout) -> LONDON", fmt(f["normal_per_s"])],
            ["ratio (replay / normal)", f"{f['ratio']:.2f}"],
        ],
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
