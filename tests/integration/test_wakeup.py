"""The dispatcher's wake-up (sql_templates/postgresql/_wakeup.sql.j2): a capture notifies
only while the dispatcher waits for it, the dispatcher cannot start waiting while a
capturing transaction is open, and no committed change waits for the safety-net poll
because of either.

On a real server with the real capture triggers; the last tests run the real bridges
through the cluster, with the safety-net poll made too slow to hide a missed wake-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from bridge.config import Config
from bridge.dialects import for_url
from tests.conftest import SiteMaker, db_of, pg_url, running, sql, wait_for

pytestmark = pytest.mark.integration

INSERT = "INSERT INTO orders (id, customer) VALUES (%s, 'wake')"
WAKEUP_KEY = 7093848243014293323  # _wakeup.sql.j2's


@pytest.fixture
def site(make_sites: SiteMaker) -> Config:
    return make_sites()["PARIS"]


@contextmanager
def listener(cfg: Config) -> Iterator[tuple[psycopg.Connection[Any], list[str]]]:
    """A session LISTENing where the dispatcher does; the notifications it got so far."""
    got: list[str] = []
    with psycopg.connect(pg_url(db_of(cfg)), autocommit=True) as conn:
        conn.add_notify_handler(lambda n: got.append(n.channel))
        conn.execute("LISTEN bridge_outbox")
        yield conn, got


def received(conn: psycopg.Connection[Any], got: list[str], n: int) -> bool:
    conn.execute("SELECT 1")  # notifications are delivered with a statement's answer
    return len(got) >= n


def test_a_capture_notifies_only_while_the_dispatcher_waits(site: Config) -> None:
    dialect = for_url(site.database_url)
    with (
        listener(site) as (conn, got),
        psycopg.connect(pg_url(db_of(site)), autocommit=True) as dispatcher,
        psycopg.connect(pg_url(db_of(site)), autocommit=True) as app,
    ):
        app.execute(INSERT, (1,))  # nobody waits: no notification
        assert dispatcher.execute(dialect.render("dispatcher_wait")).fetchone() == (True,)
        app.execute(INSERT, (2,))  # the dispatcher waits: notified
        wait_for(lambda: received(conn, got, 1), 10, "the notification of the second insert")
        assert dispatcher.execute(dialect.render("dispatcher_woken")).fetchone() == (True,)
        app.execute(INSERT, (3,))  # woken: no notification
        assert dispatcher.execute(dialect.render("dispatcher_wait")).fetchone() == (True,)
        app.execute(INSERT, (4,))
        # notifications come in commit order: had the third insert notified, its
        # notification would be here with the fourth's
        wait_for(lambda: received(conn, got, 2), 10, "the notification of the fourth insert")
        assert got == ["bridge_outbox", "bridge_outbox"]


def test_the_dispatcher_cannot_wait_while_a_capturing_transaction_is_open(site: Config) -> None:
    dialect = for_url(site.database_url)
    with (
        psycopg.connect(pg_url(db_of(site)), autocommit=True) as dispatcher,
        psycopg.connect(pg_url(db_of(site))) as app,
    ):
        app.execute(INSERT, (1,))  # captured, not committed
        assert dispatcher.execute(dialect.render("dispatcher_wait")).fetchone() == (False,)
        app.commit()
        assert dispatcher.execute(dialect.render("dispatcher_wait")).fetchone() == (True,)
        # a transaction that did not capture (bridge's apply) does not hold it back
        app.execute("SELECT set_config('bridge.applying', 'on', true)")
        app.execute(INSERT, (2,))
        assert dispatcher.execute(dialect.render("dispatcher_woken")).fetchone() == (True,)
        assert dispatcher.execute(dialect.render("dispatcher_wait")).fetchone() == (True,)
        app.rollback()


def at(cfg: Config, key: int) -> bool:
    return bool(sql(db_of(cfg), "SELECT 1 FROM orders WHERE id = %s", key))


def waiting(cfg: Config) -> bool:
    """The site's dispatcher holds the wake-up lock (it waits for a notification)."""
    return bool(
        sql(
            "postgres",
            "SELECT 1 FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.mode = 'ExclusiveLock' AND l.granted"
            " AND a.application_name = 'bridge' AND a.datname = %s"
            f" AND (l.classid::bigint << 32 | l.objid::bigint) = {WAKEUP_KEY}",
            db_of(cfg),
        )
    )


def slow_safety_net(make_sites: SiteMaker) -> dict[str, Config]:
    """Sites whose dispatcher polls and sweeps every 10 minutes: what travels within the
    tests' deadlines travelled on a wake-up or a short read."""
    return make_sites(poll_interval=600.0, republish_after=600.0)


def test_a_transaction_committed_after_a_later_one_while_the_dispatcher_waits(
    make_sites: SiteMaker,
) -> None:
    """The long transaction captures while the dispatcher waits (so it will notify at
    its commit); a later transaction commits first and travels; the dispatcher reads past
    the long one's seq, then waits again; the long one's commit wakes it and its row,
    behind the cursor, travels at once."""
    cfgs = slow_safety_net(make_sites)
    paris, london = cfgs["PARIS"], cfgs["LONDON"]
    with running(*cfgs.values()), psycopg.connect(paris.database_url) as long_tx:
        wait_for(lambda: waiting(paris), 30, "PARIS's dispatcher waiting for a notification")
        long_tx.execute(INSERT, (1,))  # captured, stays open
        sql(db_of(paris), INSERT, 2)
        wait_for(lambda: at(london, 2), 30, "the change committed while the other is open")
        wait_for(lambda: waiting(paris), 30, "PARIS's dispatcher waiting again")
        assert not at(london, 1)
        long_tx.commit()
        wait_for(lambda: at(london, 1), 30, "the long transaction's change")


def test_changes_beside_a_transaction_that_holds_the_dispatcher_awake(
    make_sites: SiteMaker,
) -> None:
    """The long transaction captures while the dispatcher is not waiting (a session
    holds the wake-up lock shared, as a capture does, from before the bridges start until
    then): it holds the lock shared in its turn, so the dispatcher cannot wait for a
    notification while it is open, and finds the changes committed meanwhile (which send
    none) by its short reads; the long one's row when it commits."""
    cfgs = slow_safety_net(make_sites)
    paris, london = cfgs["PARIS"], cfgs["LONDON"]
    with (
        psycopg.connect(paris.database_url, autocommit=True) as holder,
        psycopg.connect(paris.database_url) as long_tx,
    ):
        holder.execute(f"SELECT pg_advisory_lock_shared({WAKEUP_KEY})")
        with running(*cfgs.values()):
            long_tx.execute(INSERT, (1,))  # captured, stays open: holds the lock shared
            holder.execute(f"SELECT pg_advisory_unlock_shared({WAKEUP_KEY})")
            sql(db_of(paris), INSERT, 2)
            wait_for(lambda: at(london, 2), 30, "the change committed beside the open one")
            assert not waiting(paris)  # it could not: the long transaction is open
            sql(db_of(paris), INSERT, 3)
            wait_for(lambda: at(london, 3), 30, "another")
            assert not at(london, 1)
            long_tx.commit()
            wait_for(lambda: at(london, 1), 30, "the long transaction's change")
            wait_for(lambda: waiting(paris), 30, "PARIS's dispatcher waiting at last")
