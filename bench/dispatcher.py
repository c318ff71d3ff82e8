"""Dispatcher: confirmed publishes per second of `bridge.dispatcher.Dispatcher` draining an
outbox, against a bare pika publisher with windowed confirms.

Each round pre-fills the outbox of `bench_dispatch_paris` with N rows through the capture
triggers (one bulk INSERT of N orders), reads those rows back and encodes them exactly as
the dispatcher does (`bridge.dispatcher.message()`, with the site's
user_id). Then, queues purged before each run so both start from the same queue depth:

- subject: a `Dispatcher` (its own thread, the site's configuration, `max_in_flight` W)
  from start until every row has `published_at` set (its `published` counter reaches N:
  confirmed by the broker and marked in the database);
- baseline: a pika `SelectConnection` publisher with the same user, exchange
  `bridge.events`, bodies and properties (mandatory), keeping up to W publishes
  unconfirmed and refilling the window in the confirm callback, until all N are confirmed.

Both connect through the same address and route to the same four quorum queues
(`bridge.topology.apply` on fresh queues in the benchmark vhost); baseline and subject
alternate which goes first.

    python -m bench.dispatcher [--quick] [--rounds R] [--events N] [--window W]
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pika
import pika.spec
import psycopg

from bench.common import (
    Broker,
    Hiccup,
    attempt,
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
from bridge.broker import EVENTS_EXCHANGE, Endpoints, parameters
from bridge.config import Config
from bridge.dialects import for_url
from bridge.dispatcher import Dispatcher, message
from bridge.stats import Stats
from tests.conftest import create_site_db, make_config, pg_url, setup_site, sql, truncate

NAME = "dispatcher"
DB = "bench_dispatch_paris"
SITE = "PARIS"
TARGET = 0.9

PREFILL = """
INSERT INTO orders (id, customer, amount, note, updated_at, blob)
SELECT g, 'customer-' || lpad((g %% 1000)::text, 4, '0'), (g %% 10000) + 0.25,
       'order ' || g || ': 3 items, deliver before noon',
       timestamptz '2026-01-01 12:00:00+00' + make_interval(secs => g),
       decode(repeat(lpad(to_hex(g), 16, '0'), 2), 'hex')
  FROM generate_series(1, %s) AS g
"""


@dataclass
class Messages:
    bodies: list[bytes]
    props: list[pika.BasicProperties]

    @property
    def mean_body_bytes(self) -> float:
        return sum(len(b) for b in self.bodies) / len(self.bodies)


def prefill(cfg: Config, n: int) -> Messages:
    """N unpublished outbox rows, and the messages the dispatcher will make of them."""
    truncate(DB, "orders, bridge_outbox RESTART IDENTITY")
    sql(DB, PREFILL, n)
    sql(DB, "VACUUM ANALYZE bridge_outbox")
    dialect = for_url(cfg.database_url)
    user = Endpoints.of(cfg).user
    with psycopg.connect(pg_url(DB), autocommit=True) as conn:
        rows = conn.execute(
            dialect.render("outbox_fetch"), {"after": 0, "gaps": [], "limit": n}
        ).fetchall()
    bodies, props = [], []
    for row in rows:
        body, prop = message(row, user)
        bodies.append(body)
        props.append(prop)
    return Messages(bodies, props)


@dataclass
class WindowedPublisher:
    """A bare publisher: up to `window` unconfirmed publishes, refilled on each confirm."""

    url: str
    messages: Messages
    window: int
    heartbeat: int = 30
    sent: int = 0
    confirmed: int = 0
    nacked: int = 0
    returned: int = 0
    elapsed: float = 0.0
    error: BaseException | None = None
    _outstanding: deque[int] = field(default_factory=deque)
    _acked_alone: set[int] = field(default_factory=set)
    _t0: float = 0.0
    _channel: Any = None
    _conn: Any = None

    def run(self) -> float:
        self._t0 = time.perf_counter()
        self._conn = pika.SelectConnection(
            parameters(self.url, self.heartbeat),
            on_open_callback=lambda c: c.channel(on_open_callback=self._on_channel),
            on_open_error_callback=self._on_error,
            on_close_callback=lambda c, _r: c.ioloop.stop(),
        )
        self._conn.ioloop.start()
        if self.error is not None:
            raise self.error
        return self.elapsed

    def _on_error(self, conn: Any, exc: BaseException) -> None:
        self.error = exc
        conn.ioloop.stop()

    def _on_channel(self, channel: Any) -> None:
        self._channel = channel
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm)
        self._fill()

    def _on_return(self, *_args: Any) -> None:
        self.returned += 1

    def _fill(self) -> None:
        bodies, props = self.messages.bodies, self.messages.props
        while self.sent < len(bodies) and len(self._outstanding) < self.window:
            self._channel.basic_publish(
                EVENTS_EXCHANGE, "", bodies[self.sent], props[self.sent], mandatory=True
            )
            self.sent += 1
            self._outstanding.append(self.sent)  # delivery tags count from 1

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if not isinstance(method, pika.spec.Basic.Ack):
            self.nacked += 1
        tag: int = method.delivery_tag
        if method.multiple:
            while self._outstanding and self._outstanding[0] <= tag:
                t = self._outstanding.popleft()
                if t in self._acked_alone:
                    self._acked_alone.discard(t)
                else:
                    self.confirmed += 1
        else:
            self.confirmed += 1
            self._acked_alone.add(tag)
            while self._outstanding and self._outstanding[0] in self._acked_alone:
                self._acked_alone.discard(self._outstanding.popleft())
        if self.confirmed >= len(self.messages.bodies):
            self.elapsed = time.perf_counter() - self._t0
            self._conn.close()
        else:
            self._fill()


def run_baseline(broker: Broker, messages: Messages, window: int) -> dict[str, Any]:
    pub = WindowedPublisher(broker.site_url(SITE), messages, window)
    c0 = time.process_time()
    elapsed = pub.run()
    return {
        "seconds": elapsed,
        "rate": len(messages.bodies) / elapsed,
        "cpu_s": time.process_time() - c0,
        "nacked": pub.nacked,
        "returned": pub.returned,
    }


def run_subject(cfg: Config, n: int, timeout: float) -> dict[str, Any]:
    stats, stop = Stats(), threading.Event()
    dispatcher = Dispatcher(cfg, for_url(cfg.database_url), Endpoints.of(cfg), stop, stats)
    thread = threading.Thread(target=dispatcher.run, name="bench-dispatcher", daemon=True)
    c0 = time.process_time()
    t0 = time.perf_counter()
    thread.start()
    deadline = t0 + timeout
    while stats.snapshot().get("published", 0) < n and time.perf_counter() < deadline:
        time.sleep(0.01)  # coarse: a busy poll would take the GIL from the dispatcher
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    stop.set()
    thread.join(30)
    counts = stats.snapshot()
    if counts.get("dispatcher_reconnects", 0):
        raise Hiccup(f"the dispatcher reconnected {counts['dispatcher_reconnects']} time(s)")
    unpublished = sql(DB, "SELECT count(*) FROM bridge_outbox WHERE published_at IS NULL")[0][0]
    if unpublished:
        raise RuntimeError(f"dispatcher left {unpublished} row(s) unpublished after {timeout}s")
    return {
        "seconds": elapsed,
        "rate": n / elapsed,
        "cpu_s": cpu,
        "published": counts.get("published", 0),
        "nacked": counts.get("nacked", 0),
        "republished": counts.get("republished", 0),
        "reconnects": counts.get("dispatcher_reconnects", 0),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument("--events", type=int, default=None, help="outbox rows per run")
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="unconfirmed publishes in flight (default: bridge's max_in_flight)",
    )
    args = p.parse_args(argv)
    quick: bool = args.quick
    rounds = args.rounds or (4 if quick else 6)
    n = args.events or (10000 if quick else 20000)
    broker = Broker(args.vhost, args.amqp_host_port)
    broker.ensure_ready()
    # republish_after: no consumer echoes events here, so no row may count as lost
    cfg = make_config(
        SITE,
        DB,
        amqp_url=broker.site_url(SITE),
        republish_after=600.0,
        poll_interval=Config.poll_interval,
    )
    window: int = args.window or cfg.max_in_flight
    params = {
        "rounds": rounds,
        "events_per_run": n,
        "window": window,
        "dispatcher_max_in_flight": cfg.max_in_flight,
        "dispatcher_batch_size": cfg.batch_size,
        "queues": len(broker.queues()),
        "publisher_user": broker.site_user(SITE),
    }
    result = header(NAME, quick, broker, params)
    started = time.perf_counter()
    log(f"dispatcher: creating {DB} and fresh queues in vhost {broker.vhost}")
    create_site_db(DB)
    setup_site(cfg)
    broker.fresh_topology()
    raw: list[dict[str, Any]] = []
    discarded: list[str] = []

    def one_round(r: int, n: int) -> dict[str, dict[str, Any]]:
        messages = prefill(cfg, n)
        params["mean_body_bytes"] = round(messages.mean_body_bytes)
        got: dict[str, dict[str, Any]] = {}
        for kind in rounds_order(r):
            broker.purge()
            if kind == "baseline":
                got[kind] = run_baseline(broker, messages, window)
            else:
                got[kind] = run_subject(cfg, n, 120 + n / 20)
            got[kind]["queue_depths"] = sorted(set(broker.depths().values()))
        return got

    try:
        attempt("warm-up", partial(one_round, 0, min(n, 1000)), broker, discarded)
        for r in range(rounds):
            got = attempt(f"round {r + 1}", partial(one_round, r, n), broker, discarded)
            entry = {
                "round": r + 1,
                "bare_pika_per_s": round(got["baseline"]["rate"], 1),
                "dispatcher_per_s": round(got["subject"]["rate"], 1),
                "ratio": round(got["subject"]["rate"] / got["baseline"]["rate"], 4),
                "bare_pika_cpu_ms_per_1k": round(got["baseline"]["cpu_s"] * 1e6 / n, 1),
                "dispatcher_cpu_ms_per_1k": round(got["subject"]["cpu_s"] * 1e6 / n, 1),
                "baseline": got["baseline"],
                "subject": got["subject"],
            }
            raw.append(entry)
            log(
                f"dispatcher round {r + 1}/{rounds}: {entry['dispatcher_per_s']:.0f} vs bare "
                f"{entry['bare_pika_per_s']:.0f} msg/s = {entry['ratio']:.3f}"
            )
    finally:
        broker.teardown()
        drop_db(DB)

    def med(key: str) -> float:
        return median([e[key] for e in raw])

    ratio = med("ratio")
    result["rounds"] = raw
    result["discarded_attempts"] = discarded
    result["medians"] = {
        k: med(k)
        for k in (
            "bare_pika_per_s",
            "dispatcher_per_s",
            "bare_pika_cpu_ms_per_1k",
            "dispatcher_cpu_ms_per_1k",
        )
    }
    result["results"] = {
        "confirmed_publishes": ratio_result(
            ratio, med("dispatcher_per_s"), med("bare_pika_per_s"), TARGET
        )
    }
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    write_results(NAME, result, markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    res, m, prm = result["results"]["confirmed_publishes"], result["medians"], result["parameters"]
    lines = md_header(result, "Dispatcher: confirmed publishes per second vs. bare pika")
    lines += [
        f"{prm['events_per_run']} outbox rows per run ({prm.get('mean_body_bytes', '?')} bytes "
        f"per message on average), fanout to {prm['queues']} quorum queues, window "
        f"{prm['window']}, published as `{prm['publisher_user']}`. Ratio = median over rounds "
        "of (dispatcher / bare pika). CPU = this process's CPU time per 1000 messages.",
        "",
    ]
    lines += table(
        ["", "bare pika", "Dispatcher", "ratio (median)", "target", "verdict"],
        [
            [
                "confirmed msg/s",
                fmt(m["bare_pika_per_s"]),
                fmt(m["dispatcher_per_s"]),
                fmt(res["ratio"], 3),
                res["target"],
                res["verdict"],
            ],
            [
                "CPU ms / 1000 msg",
                fmt(m["bare_pika_cpu_ms_per_1k"]),
                fmt(m["dispatcher_cpu_ms_per_1k"]),
                "",
                "",
                "",
            ],
        ],
    )
    lines += ["", "Rounds:", ""]
    lines += table(
        ["round", "bare pika msg/s", "Dispatcher msg/s", "ratio"],
        [
            [e["round"], fmt(e["bare_pika_per_s"]), fmt(e["dispatcher_per_s"]), fmt(e["ratio"], 3)]
            for e in result["rounds"]
        ],
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
