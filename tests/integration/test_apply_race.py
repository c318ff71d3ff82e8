"""A local application and bridge's apply change the same row at the same moment, on
separate connections, under every conflict policy.

The case that diverged (issue 6): MADRID's application updates a row and has not yet
committed when the applier receives LONDON's older change of it. The applier waits for the
row lock; MADRID commits; the applier must then decide against MADRID's change (still in
its outbox), not against what the row held before. Reading the versions in the statement
that waited for the lock used that statement's older snapshot: the older remote change
overwrote the newer local one, nothing was logged, and MADRID ended with a row the other
sites did not hold. The same holds for a local insert of a key the applier finds absent,
and for a local delete.

The other order (the apply holds the row, the application waits) must stamp the local
change after the applied one, so that it wins everywhere.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from bridge.apply import APPLIED, CONCURRENT, CONFLICT, REMOVED
from bridge.config import Config
from bridge.dialects import for_url
from bridge.dispatcher import message
from bridge.event import Event, decode
from tests.conftest import DB_PREFIX, create_site_db, make_config, pg_url, setup_site
from tests.racing import ObservedApplier, apply_while_writing, write_while_applying

pytestmark = pytest.mark.integration

POLICIES = ("lww", "manual", "column:updated_at", "none")


@dataclass
class Site:
    cfg: Config
    writer: psycopg.Connection[Any]  # the application (not autocommit: it holds its locks)
    reader: psycopg.Connection[Any]
    applier: ObservedApplier
    cursor: int = 0

    def write(self, text: str, *params: Any) -> None:
        """A local statement, committed."""
        self.writer.execute(text, params)
        self.writer.commit()

    def published(self) -> list[Event]:
        """New outbox rows, as the dispatcher would send them."""
        fetch = for_url(self.cfg.database_url).render("outbox_fetch")
        rows = self.reader.execute(
            fetch, {"after": self.cursor, "gaps": [], "limit": 100}
        ).fetchall()
        self.cursor = max([self.cursor, *(r[0] for r in rows)])
        return [decode(message(r, self.cfg.site.lower())[0]) for r in rows]

    def row(self, key: int) -> tuple[Any, ...] | None:
        return self.reader.execute(
            "SELECT customer, note FROM orders WHERE id = %s", (key,)
        ).fetchone()

    def conflicts(self) -> list[str]:
        return [r[0] for r in self.reader.execute("SELECT reason FROM bridge_conflicts")]


@pytest.fixture(params=POLICIES)
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[Site, Site, str]]:
    """LONDON (where the remote change is made) and MADRID (where it races a local one)."""
    policy = request.param
    sites = []
    try:
        for name in ("LONDON", "MADRID"):
            db = f"{DB_PREFIX}race_{name.lower()}"
            create_site_db(db)
            cfg = make_config(name, db, tables={"orders": policy})
            setup_site(cfg)
            sites.append(
                Site(
                    cfg,
                    psycopg.connect(cfg.database_url),
                    psycopg.connect(cfg.database_url, autocommit=True),
                    ObservedApplier(cfg, for_url(cfg.database_url)),
                )
            )
        yield sites[0], sites[1], policy
    finally:
        for site in sites:
            site.applier.close()
            site.writer.close()
            site.reader.close()


@pytest.fixture
def monitor() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        yield conn


def both_have(london: Site, madrid: Site, key: int) -> None:
    """A row both sites hold, with its version known at both."""
    london.write("INSERT INTO orders (id, customer, note) VALUES (%s, 'first', 'x')", key)
    assert [o.status for o in madrid.applier.apply_batch(london.published())] == [APPLIED]


# (local statement at MADRID, LONDON's earlier change, row at MADRID afterwards if the
# local change wins)
CASES = {
    "update vs update": (
        "UPDATE orders SET customer = 'madrid', updated_at = clock_timestamp() WHERE id = 1",
        "UPDATE orders SET customer = 'london', updated_at = clock_timestamp() WHERE id = 1",
        ("madrid", "x"),
    ),
    "insert vs insert": (
        "INSERT INTO orders (id, customer, updated_at) VALUES (2, 'madrid', clock_timestamp()) "
        "ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer, "
        "updated_at = EXCLUDED.updated_at",
        "INSERT INTO orders (id, customer, updated_at) VALUES (2, 'london', clock_timestamp())",
        ("madrid", None),
    ),
    "insert and delete vs insert": (
        # the applier's insert waits for the local one, which then leaves no row behind
        "INSERT INTO orders (id, customer) VALUES (2, 'madrid') ON CONFLICT (id) DO NOTHING; "
        "DELETE FROM orders WHERE id = 2",
        "INSERT INTO orders (id, customer, updated_at) VALUES (2, 'london', clock_timestamp())",
        None,
    ),
    "update vs delete": (
        "UPDATE orders SET customer = 'madrid', updated_at = clock_timestamp() WHERE id = 1",
        "DELETE FROM orders WHERE id = 1",
        ("madrid", "x"),
    ),
    "delete vs update": (
        "DELETE FROM orders WHERE id = 1",
        "UPDATE orders SET customer = 'london', updated_at = clock_timestamp() WHERE id = 1",
        None,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_an_older_remote_change_waits_for_the_local_one_and_loses(
    pair: tuple[Site, Site, str], monitor: psycopg.Connection[Any], case: str
) -> None:
    london, madrid, policy = pair
    local, remote, local_wins = CASES[case]
    both_have(london, madrid, 1)
    london.write(remote)
    (older,) = london.published()
    madrid.writer.execute(local)  # MADRID's application: run, not committed
    race = apply_while_writing(monitor, madrid.writer, madrid.applier, [older])
    assert race.waited, "the applier never waited for the application: no race took place"
    status = race.outcomes[0].status
    if policy == "none":
        # single-writer tables: a remote change is applied as it comes, after the local
        # change, which is logged as overwritten so that it does not vanish silently
        assert status == APPLIED
        assert madrid.conflicts() == ["overwrote a concurrent local change"]
        return
    assert status == CONFLICT, race.outcomes
    assert madrid.row(2 if case.startswith("insert") else 1) == local_wins
    (reason,) = madrid.conflicts()
    assert reason.startswith(("older than the local", "manual policy")), reason


@pytest.mark.parametrize("case", CASES)
def test_a_local_change_that_waits_for_an_apply_is_stamped_after_it(
    pair: tuple[Site, Site, str], monitor: psycopg.Connection[Any], case: str
) -> None:
    london, madrid, _policy = pair
    local, remote, _ = CASES[case]
    both_have(london, madrid, 1)
    london.write(remote)
    (applied,) = london.published()
    race = write_while_applying(monitor, madrid.writer, [(local, ())], madrid.applier, [applied])
    assert race.waited, "the application never waited for the apply: no race took place"
    assert ([o.status for o in race.outcomes], race.writer_error) == ([APPLIED], None)
    captured = madrid.published()
    if case == "update vs delete":
        # the application's update found the row deleted by the apply: nothing to capture
        assert (captured, madrid.row(1)) == ([], None)
        return
    (after,) = captured
    assert (after.timestamp, after.origin) > (applied.timestamp, applied.origin), (
        f"MADRID's change {after.timestamp} is not stamped after the change it followed "
        f"{applied.timestamp}: it would lose to it at the other sites"
    )


@pytest.mark.parametrize("pair", [p for p in POLICIES if p != "none"], indirect=True)
def test_a_delete_applied_while_a_local_insert_of_its_key_commits_is_reconciled_at_the_echo(
    pair: tuple[Site, Site, str], monitor: psycopg.Connection[Any]
) -> None:
    """The one race that no lock can order: LONDON's delete of a row MADRID does not have
    is applied while MADRID's application inserts that key and has not committed; the
    applier finds no row (nothing to lock, nothing to wait for) and MADRID's insert was
    captured without seeing the tombstone. When MADRID's insert comes back (its echo), the
    later of the two has won at every other site, and MADRID follows: the delete, later,
    removes the row here too; the insert, later, keeps it and the delete, which was never
    compared with anything, is logged."""
    london, madrid, _policy = pair
    london.write("INSERT INTO orders (id, customer) VALUES (6, 'london')")
    london.write("DELETE FROM orders WHERE id = 6")
    _insert, delete = london.published()
    ahead = Event(
        str(uuid.uuid4()),
        delete.timestamp + dt.timedelta(hours=1),  # LONDON's clock an hour ahead
        "LONDON",
        "orders.delete",
        {**delete.data},
    )
    for remote, local_wins in ((delete, True), (ahead, False)):
        madrid.write("DELETE FROM orders WHERE id = 6")
        madrid.applier.apply_batch(madrid.published())  # its echo: the row is gone here
        madrid.writer.execute("INSERT INTO orders (id, customer) VALUES (6, 'madrid')")
        race = apply_while_writing(monitor, madrid.writer, madrid.applier, [remote])
        assert (race.waited, [o.status for o in race.outcomes]) == (False, [APPLIED])
        (insert,) = madrid.published()
        assert madrid.row(6) == ("madrid", None), "the insert committed after the delete"
        assert [o.status for o in madrid.applier.apply_batch([insert])] == ["echo"]
        logged = madrid.reader.execute(
            "SELECT event_id::text, reason FROM bridge_conflicts ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if local_wins:
            assert madrid.row(6) == ("madrid", None)
            assert logged == (remote.id, CONCURRENT)
        else:
            assert madrid.row(6) is None, "the later delete wins here too"
            assert logged == (insert.id, REMOVED)
