"""The consumer alone, its database sessions killed again and again while a steady stream
of another site's events arrives: every event published must end in its inbox.

A narrower view of test_database.py's first test (which kills every bridge session at
once, dispatchers included): here the events are published straight to the exchange, so a
loss can only be the consumer's (or the applier's).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from typing import Any

import pika
import psycopg
import pytest

from bridge.apply import Applier
from bridge.broker import EVENTS_EXCHANGE, Endpoints, parameters
from bridge.consumer import Consumer
from bridge.dialects import for_url
from bridge.dispatcher import message
from bridge.progress import QueueProgress
from bridge.stats import Stats
from tests.conftest import db_of, pg_url, sql, wait_for

pytestmark = pytest.mark.faults

EVENTS = 4000
KILL = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE application_name = 'bridge' AND datname = %s AND pid <> pg_backend_pid()"
)


def events_of(cfg: Any) -> list[tuple[str, bytes, pika.BasicProperties]]:
    """EVENTS changes made at `cfg`'s site (inserts, updates, deletes of 300 keys), as the
    dispatcher would publish them."""
    user = Endpoints(cfg.amqp_urls).user
    with psycopg.connect(pg_url(db_of(cfg)), autocommit=True) as conn:
        for i in range(EVENTS):
            key, r = random.randint(1, 300), random.random()
            if r < 0.5:
                conn.execute(
                    "INSERT INTO orders (id, customer) VALUES (%s, 'c') "
                    "ON CONFLICT (id) DO UPDATE SET note = 'again'",
                    (key,),
                )
            elif r < 0.85:
                conn.execute("UPDATE orders SET note = %s WHERE id = %s", (str(i), key))
            else:
                conn.execute("DELETE FROM orders WHERE id = %s", (key,))
        fetch = for_url(cfg.database_url).render("outbox_fetch")
        rows = conn.execute(fetch, {"after": 0, "gaps": [], "limit": 10 * EVENTS}).fetchall()
    out = []
    for row in rows:
        body, props = message(row, user)
        out.append((row[1], body, props))
    return out


def test_every_event_reaches_the_inbox_whatever_the_consumers_sessions_go_through(sites):
    london, madrid = sites["LONDON"], sites["MADRID"]
    published = events_of(london)
    stop, stats = threading.Event(), Stats()
    applier = Applier(madrid, for_url(madrid.database_url), connect_now=False)
    applier.progress = QueueProgress(applier.clock)
    consumer = Consumer(
        madrid,
        madrid.queue,
        applier,
        Endpoints(madrid.amqp_urls),
        stop,
        stats,
        applier.progress,
    )
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    kills = 0

    def inbox() -> int:
        n: int = sql(db_of(madrid), "SELECT count(*) FROM bridge_inbox")[0][0]
        return n

    conn = pika.BlockingConnection(parameters(london.amqp_urls[0]))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for i, (_, body, props) in enumerate(published):
            channel.basic_publish(EVENTS_EXCHANGE, "", body, props, mandatory=True)
            if i % 50 == 49:
                time.sleep(0.02)  # ~2,000 events/s, in bursts of 50
            if i % 100 == 99:
                kills += sql("postgres", KILL, db_of(madrid))[0][0]
        for _ in range(30):  # and while the consumer catches up
            kills += sql("postgres", KILL, db_of(madrid))[0][0]
            time.sleep(random.uniform(0.05, 0.3))
        with contextlib.suppress(AssertionError):  # what is missing is said below
            wait_for(lambda: inbox() >= len(published), 120, "every event in the inbox")
    finally:
        stop.set()
        thread.join(30)
        conn.close()
    ids = {e for (e,) in sql(db_of(madrid), "SELECT event_id::text FROM bridge_inbox")}
    missing = [e for e, _, _ in published if e not in ids]
    print(f"\n{len(published)} events, {kills} sessions killed, stats {stats}")
    assert missing == [], f"{len(missing)} events never reached the inbox"
