"""Parent and child tables with a foreign key, through the real broker with bridges running.

Written in one transaction at one site, parents come before their children in the outbox
and in every queue, across batch boundaries. But a child can reach a site before its
parent: the origin's dispatcher publishes a transaction that committed after a later one
was read only on its next sweep, RabbitMQ redelivers a crashed consumer's messages out of
order, and a child may come from another site than its parent. Such a child waits in
`bridge_waiting` (its message acknowledged) and is applied once its parent is there; a
delete of a parent that a child still references waits for the child's delete. Before,
the database's refusal was logged as a conflict and the child was lost.
"""

from __future__ import annotations

from typing import Any

import pika
import pytest

from bridge import verify
from bridge.broker import EVENTS_EXCHANGE
from bridge.config import Config
from bridge.dialects import for_url
from bridge.dispatcher import message
from tests.conftest import SiteMaker, amqp_url_for, db_of, outbox_empty, running, sql, wait_for

pytestmark = pytest.mark.integration

FAMILY = """
CREATE TABLE parents (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE children (
    id        int PRIMARY KEY,
    parent_id int NOT NULL REFERENCES parents {on_delete},
    note      text
)
"""
TABLES = {"parents": "lww", "children": "lww"}


def count(cfg: Config, table: str) -> int:
    return int(sql(db_of(cfg), f"SELECT count(*) FROM {table}")[0][0])


def assert_verified(sites: dict[str, Config]) -> None:
    peers = {c.site: c.database_url for c in sites.values() if c.site != "PARIS"}
    sums, differing = verify.verify(sites["PARIS"], peers)
    assert differing == [], sums


def test_parents_and_children_written_in_one_transaction_reach_every_site(
    make_sites: SiteMaker,
) -> None:
    """300 parents and 900 children in one transaction, each parent just before its
    children: the consumers' batches (200 messages) split families. Then parents deleted
    with ON DELETE CASCADE: their children's deletes are captured too."""
    sites = make_sites(FAMILY.format(on_delete="ON DELETE CASCADE"), tables=TABLES)
    cfgs = list(sites.values())
    statements = []
    for p in range(1, 301):
        statements.append(f"INSERT INTO parents VALUES ({p}, 'parent {p}')")
        statements.append(
            f"INSERT INTO children SELECT c, {p}, 'child ' || c "
            f"FROM generate_series({3 * p}, {3 * p + 2}) AS c"
        )
    with running(*cfgs):
        sql(db_of(sites["LONDON"]), "DO $$ BEGIN " + "; ".join(statements) + "; END $$")
        sql(db_of(sites["LONDON"]), "DELETE FROM parents WHERE id % 10 = 0")
        wait_for(
            lambda: all(
                count(c, "parents") == 270 and count(c, "children") == 810 and outbox_empty(c)
                for c in cfgs
            ),
            180,
            "270 parents and 810 children everywhere, the outboxes drained",
            interval=1.0,
        )
    assert_verified(sites)
    for cfg in cfgs:
        assert count(cfg, "bridge_conflicts") == 0, cfg.site
        assert count(cfg, "bridge_waiting") == 0, cfg.site
    deleted = sql(db_of(sites["MADRID"]), "SELECT count(*) FROM bridge_row_version WHERE deleted")
    assert deleted == [(30 + 90,)]


def publish_reordered(cfg: Config, order: list[int]) -> list[dict[str, Any]]:
    """Publish rows of the site's outbox (its bridge is not running) as its dispatcher
    would, in `order` (the rows' positions among the unpublished ones): how the other sites
    receive them when they were not published in order."""
    dialect = for_url(cfg.database_url)
    with dialect.connect(cfg.database_url) as conn:
        rows = conn.execute(
            dialect.render("outbox_fetch"), {"after": 0, "gaps": [], "limit": 100}
        ).fetchall()
        conn.execute(
            "UPDATE bridge_outbox SET published_at = clock_timestamp() WHERE seq = ANY(%s)",
            ([rows[n][0] for n in order],),
        )
    broker = pika.BlockingConnection(pika.URLParameters(amqp_url_for(cfg.site)))
    channel = broker.channel()
    channel.confirm_delivery()
    for n in order:
        body, props = message(rows[n], cfg.site.lower())
        channel.basic_publish(EVENTS_EXCHANGE, "", body, props, mandatory=True)
    broker.close()
    return [{"type": rows[n][4], "id": rows[n][1]} for n in order]


def waiting(bridges: dict[str, Any], site: str) -> int:
    return int(bridges[site].stats.snapshot().get("waiting", 0))


def test_a_child_that_arrives_before_its_parent_waits_for_it(make_sites: SiteMaker) -> None:
    """PARIS writes a parent and its child, later deletes both (child first); LONDON and
    MADRID receive each pair the other way round, and apply all of it."""
    sites = make_sites(FAMILY.format(on_delete=""), tables=TABLES)
    paris, others = sites["PARIS"], [sites["LONDON"], sites["MADRID"]]
    sql(db_of(paris), "INSERT INTO parents VALUES (1, 'parent')")
    sql(db_of(paris), "INSERT INTO children VALUES (10, 1, 'child')")
    sent = publish_reordered(paris, [1, 0])  # the child first
    assert [s["type"] for s in sent] == ["children.insert", "parents.insert"]
    with running(*others) as bridges:
        wait_for(
            lambda: all(count(c, "parents") == 1 and count(c, "children") == 1 for c in others),
            30,
            "the parent and the child at LONDON and MADRID",
        )
        for cfg in others:
            assert waiting(bridges, cfg.site) >= 1, "the child was not applied before its parent"
            assert count(cfg, "bridge_waiting") == 0
            assert count(cfg, "bridge_conflicts") == 0
            inbox = {r[0] for r in sql(db_of(cfg), "SELECT event_id::text FROM bridge_inbox")}
            assert inbox == {s["id"] for s in sent}

        sql(db_of(paris), "DELETE FROM children WHERE id = 10")
        sql(db_of(paris), "DELETE FROM parents WHERE id = 1")
        before = {c.site: waiting(bridges, c.site) for c in others}
        sent = publish_reordered(paris, [1, 0])  # the parent's delete first
        assert [s["type"] for s in sent] == ["parents.delete", "children.delete"]
        wait_for(
            lambda: all(count(c, "parents") == count(c, "children") == 0 for c in others),
            30,
            "both deleted at LONDON and MADRID",
        )
        for cfg in others:
            assert waiting(bridges, cfg.site) > before[cfg.site], "the delete never waited"
            assert count(cfg, "bridge_waiting") == count(cfg, "bridge_conflicts") == 0
    # PARIS's own bridge: the echoes come back through its queue
    with running(*sites.values()):
        wait_for(lambda: outbox_empty(paris), 30, "PARIS's outbox drained by the echoes")
    assert_verified(sites)


def test_rows_that_reference_each_other_through_deferred_keys(make_sites: SiteMaker) -> None:
    """Two rows referencing each other, inserted in one transaction (the key checked at
    COMMIT): neither can be applied alone, so the two are applied together. A child whose
    deferred key reaches a site in a batch before its parent's waits too (its batch would
    otherwise fail at COMMIT, and with it the consumer)."""
    ddl = (
        "CREATE TABLE people (id int PRIMARY KEY, name text, partner int "
        "REFERENCES people DEFERRABLE INITIALLY DEFERRED)"
    )
    sites = make_sites(ddl, tables={"people": "lww"})
    paris, madrid = sites["PARIS"], sites["MADRID"]
    sql(
        db_of(paris),
        "BEGIN; INSERT INTO people VALUES (1, 'ann', 2), (2, 'bob', 1); "
        "INSERT INTO people VALUES (3, 'cy', NULL); INSERT INTO people VALUES (4, 'di', 3); "
        "COMMIT",
    )
    with running(madrid) as bridges:
        publish_reordered(paris, [0, 1])  # ann and bob
        wait_for(lambda: count(madrid, "people") == 2, 30, "ann and bob at MADRID")
        assert waiting(bridges, "MADRID") == 2, "ann and bob were not applied together"
        publish_reordered(paris, [1])  # di (of cy and di, unpublished)
        wait_for(lambda: waiting(bridges, "MADRID") == 3, 30, "di waiting for cy")
        assert count(madrid, "people") == 2
        assert count(madrid, "bridge_waiting") == 1
        publish_reordered(paris, [0])  # cy
        wait_for(lambda: count(madrid, "people") == 4, 30, "cy, then di, at MADRID")
    assert count(madrid, "bridge_waiting") == count(madrid, "bridge_conflicts") == 0
    assert sql(db_of(madrid), "SELECT * FROM people ORDER BY id") == sql(
        db_of(paris), "SELECT * FROM people ORDER BY id"
    )
