"""An echo is not a confirm. A message whose publishing connection dies before its confirm
can be in some quorum queues and not in others (seen with RabbitMQ 3.10: messages sent in
a burst on a connection cut at once, four queues of one fanout held 8230, 8216, 8189 and
8209 of them). When the origin's own queue had it, its echo used to drop the outbox row,
which was then never published again: the sites whose queue missed it never got the
change (tests/faults/test_database.py found it, a few dozen events lost in 5,000).

Now an echo drops only a row whose publish was confirmed; an echo of a row not confirmed
notes `echoed_at`, the dispatcher publishes the row again, and drops it once confirmed.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from bridge.apply import ECHO, Applier
from bridge.config import Config
from bridge.dialects import for_url
from bridge.dispatcher import message
from bridge.event import decode
from tests.conftest import db_of, pg_url, running, sql, wait_for
from tests.racing import waiting_for_lock

pytestmark = pytest.mark.integration


def outbox(cfg: Config) -> list[tuple[object, ...]]:
    return sql(
        db_of(cfg),
        "SELECT seq, published_at IS NOT NULL, echoed_at IS NOT NULL FROM bridge_outbox"
        " ORDER BY seq",
    )


def test_an_echo_before_the_confirm_leaves_the_row_to_be_published(
    sites: dict[str, Config],
) -> None:
    """LONDON's own queue delivers a change its dispatcher never had confirmed (its
    connection died after the publish reached that queue only): the echo keeps the row,
    the dispatcher publishes it, and PARIS and MADRID get the change."""
    london = sites["LONDON"]
    sql(db_of(london), "INSERT INTO orders (id, customer) VALUES (1, 'sent once')")
    dialect = for_url(london.database_url)
    fetch = dialect.render("outbox_fetch")
    with psycopg.connect(pg_url(db_of(london)), autocommit=True) as conn:
        (row,) = conn.execute(fetch, {"after": 0, "gaps": [], "limit": 10}).fetchall()
    event = decode(message(row, "london")[0])
    echo = Applier(london, dialect)
    try:
        assert [o.status for o in echo.apply_batch([event])] == [ECHO]
    finally:
        echo.close()
    assert outbox(london) == [(row[0], False, True)]  # kept, not published, echoed
    with running(*sites.values()):
        for cfg in (sites["PARIS"], sites["MADRID"]):
            wait_for(
                lambda c=cfg: (
                    sql(db_of(c), "SELECT customer FROM orders WHERE id = 1") == [("sent once",)]
                ),
                30,
                f"the change at {cfg.site}",
            )
        wait_for(lambda: outbox(london) == [], 30, "LONDON's row dropped once confirmed")


def test_a_confirm_drops_a_row_already_echoed_and_marks_the_others(
    sites: dict[str, Config],
) -> None:
    london = sites["LONDON"]
    db = db_of(london)
    sql(db, "INSERT INTO orders (id, customer) VALUES (1, 'a'), (2, 'b')")
    (first, second) = [s for (s, _, _) in outbox(london)]
    sql(db, "UPDATE bridge_outbox SET echoed_at = clock_timestamp() WHERE seq = %s", first)
    mark = for_url(london.database_url).render("outbox_mark_published")
    with psycopg.connect(pg_url(db), autocommit=True) as conn:
        done = sorted(s for (s,) in conn.execute(mark, {"seqs": [first, second]}))
    assert done == [first, second]
    assert outbox(london) == [(second, True, False)]


def test_an_echo_that_meets_the_mark_of_its_row_waits_for_it_and_drops_the_row(
    sites: dict[str, Config],
) -> None:
    """The echo comes while the dispatcher's mark of the row is not committed yet: it
    waits for the row, sees it published, and drops it (decided on its snapshot, it did
    neither, and the row was published again for an echo that never came)."""
    london = sites["LONDON"]
    db = db_of(london)
    dialect = for_url(london.database_url)
    sql(db, "INSERT INTO orders (id, customer) VALUES (1, 'x')")
    ((seq, event_id),) = sql(db, "SELECT seq, event_id::text FROM bridge_outbox")
    params = {
        "id": event_id,
        "table": "orders",
        "key": '{"id": 1}',
        "ts": "2026-01-01T00:00:00Z",
        "origin": "LONDON",
        "deleted": False,
    }
    got: list[tuple[object, ...]] = []
    with (
        psycopg.connect(pg_url(db)) as dispatcher,
        psycopg.connect(pg_url(db), autocommit=True) as consumer,
        psycopg.connect(pg_url("postgres"), autocommit=True) as monitor,
    ):
        dispatcher.execute(dialect.render("outbox_mark_published"), {"seqs": [seq]})
        pid = consumer.info.backend_pid
        echo = threading.Thread(
            target=lambda: got.append(
                consumer.execute(dialect.render("outbox_delete"), params).fetchone()
            )
        )
        echo.start()
        wait_for(lambda: waiting_for_lock(monitor, pid), 10, "the echo waiting for the row")
        dispatcher.commit()
        echo.join(10)
    assert got and got[0][0] is not None  # dropped, as published
    assert outbox(london) == []
