"""Large changes through the real broker, with bridges running: a transaction of 100,000
rows, rows of more than 1 MB, and a row too large for an event (4 MiB), refused where it is
written instead of being dead-lettered by every other site."""

from __future__ import annotations

import time

import pika
import psycopg
import pytest

from bridge import verify
from bridge.config import Config
from bridge.event import MAX_MESSAGE_BYTES, MAX_PAYLOAD_BYTES
from tests.conftest import AMQP_ADMIN, db_of, outbox_empty, running, sql, wait_for

pytestmark = pytest.mark.integration

BIG = 100_000


def count(cfg: Config, table: str = "orders") -> int:
    return int(sql(db_of(cfg), f"SELECT count(*) FROM {table}")[0][0])


def assert_verified(sites: dict[str, Config]) -> None:
    peers = {c.site: c.database_url for c in sites.values() if c.site != "PARIS"}
    sums, differing = verify.verify(sites["PARIS"], peers)
    assert differing == [], sums


def dead_letters(cfg: Config) -> int:
    """Messages in the site's dead-letter queue (a connection of its own: the test's may
    have been idle longer than the broker's heartbeat)."""
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
    try:
        queue = conn.channel().queue_declare(f"{cfg.queue}.dlq", passive=True)
        return int(queue.method.message_count)
    finally:
        conn.close()


def test_a_transaction_of_100000_rows_reaches_every_site(sites: dict[str, Config]) -> None:
    cfgs = list(sites.values())
    paris = db_of(sites["PARIS"])
    with running(*cfgs):
        started = time.monotonic()
        sql(
            paris,
            "INSERT INTO orders (id, customer, amount, note, updated_at) "
            "SELECT n, 'customer ' || n %% 97, n / 7.0, repeat('x', n %% 50), "
            "'2026-01-01'::timestamptz + n * interval '1 second' "
            "FROM generate_series(1, %s) AS n",
            BIG,
        )
        wait_for(
            lambda: all(count(c) == BIG and outbox_empty(c) for c in cfgs),
            900,
            f"{BIG} rows at every site, the outboxes drained",
            interval=2.0,
        )
        print(f"{BIG} rows applied at every site in {time.monotonic() - started:.0f}s")
    assert_verified(sites)
    for cfg in cfgs[1:]:
        assert count(cfg, "bridge_inbox") == BIG, cfg.site
        assert count(cfg, "bridge_conflicts") == 0, cfg.site
        assert dead_letters(cfg) == 0, cfg.site
    assert count(sites["PARIS"], "bridge_archive") == BIG


def test_rows_over_one_megabyte_travel(sites: dict[str, Config]) -> None:
    cfgs = list(sites.values())
    london = db_of(sites["LONDON"])
    with running(*cfgs):
        # a text of 1.5 MB and a bytea of 1 MB (1.4 MB in base64): one event of 2.9 MB
        sql(
            london,
            "INSERT INTO orders (id, customer, note, blob) VALUES "
            "(1, 'big', repeat('é', 750000), decode(repeat('00ff', 500000), 'hex')), "
            "(2, 'big too', repeat(md5('x'), 40000), NULL)",
        )
        sql(london, "UPDATE orders SET note = note || '!' WHERE id = 1")
        wait_for(
            lambda: all(count(c) == 2 and outbox_empty(c) for c in cfgs),
            120,
            "the two rows everywhere, the outboxes drained",
        )
    sizes = sql(
        db_of(sites["MADRID"]),
        "SELECT octet_length(note), octet_length(blob) FROM orders ORDER BY id",
    )
    assert sizes == [(1_500_001, 1_000_000), (1_280_000, None)]
    assert_verified(sites)
    biggest = sql(
        db_of(sites["PARIS"]), "SELECT max(octet_length(event::text)) FROM bridge_archive"
    )[0][0]
    assert 2_800_000 < biggest < MAX_MESSAGE_BYTES


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("repeat('x', 5000000)", "5 MB of text, compressed to a few kB where it is stored"),
        # under the binary size the check looks at more closely, over the limit as JSON text
        ("repeat(chr(1), 700000)", "700 kB of control characters, 4.2 MB escaped in JSON"),
    ],
    ids=["5MB", "escaped"],
)
def test_a_row_too_large_for_an_event_is_refused_where_it_is_written(
    sites: dict[str, Config], value: str, what: str
) -> None:
    """Sent, every other site would dead-letter it (a message over 4 MiB) and its origin
    would republish it for ever (its echo never comes back): the application's statement
    fails instead, and nothing of it is committed or sent."""
    cfgs = list(sites.values())
    paris = db_of(sites["PARIS"])
    with running(*cfgs):
        app = psycopg.connect(sites["PARIS"].database_url, autocommit=True)
        with pytest.raises(psycopg.errors.CheckViolation) as refused, app, app.transaction():
            app.execute("INSERT INTO orders (id, customer) VALUES (1, 'small')")
            app.execute(f"INSERT INTO orders (id, customer, note) VALUES (2, 'big', {value})")
        assert refused.value.diag.constraint_name == "bridge_outbox_event_at_most_4_mib", what
        sql(paris, "INSERT INTO orders (id, customer) VALUES (3, 'after')")
        wait_for(
            lambda: all(count(c) == 1 and outbox_empty(c) for c in cfgs),
            30,
            "the row written after it everywhere",
        )
    assert sql(paris, "SELECT id FROM orders") == [(3,)]
    assert count(sites["PARIS"], "bridge_archive") == 1
    for cfg in cfgs:
        assert dead_letters(cfg) == 0, cfg.site
    # the limit leaves room for the rest of the message
    assert MAX_MESSAGE_BYTES - MAX_PAYLOAD_BYTES >= 300
