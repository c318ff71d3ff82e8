"""TRUNCATE of a synced table is refused, with running bridges and the real broker.

Replayed at the other sites, a TRUNCATE would also remove rows they hold that this site
never saw (inserted there meanwhile, or on their way); not sent, the sites would differ
for good. So the capture refuses it, saying what to do instead: DELETE, which is sent row
by row and converges, or, to empty the table at one site only on purpose, a TRUNCATE in a
transaction marked as bridge's own (docs/operations.md, "TRUNCATE").
"""

from __future__ import annotations

import psycopg
import pytest

from bridge import verify
from bridge.config import Config
from tests.conftest import converged, db_of, outbox_empty, rows, running, sql, wait_for

pytestmark = pytest.mark.integration


def differing(sites: dict[str, Config]) -> list[str]:
    peers = {c.site: c.database_url for c in sites.values() if c.site != "PARIS"}
    return verify.verify(sites["PARIS"], peers)[1]


def test_truncate_is_refused_and_delete_empties_every_site(sites: dict[str, Config]) -> None:
    cfgs = list(sites.values())
    paris = db_of(sites["PARIS"])
    # a table that is not synced, whose TRUNCATE ... CASCADE reaches orders
    sql(paris, "CREATE TABLE customers (name text PRIMARY KEY)")
    sql(paris, "INSERT INTO customers SELECT DISTINCT 'c' || n FROM generate_series(1, 5) n")
    sql(paris, "ALTER TABLE orders ADD FOREIGN KEY (customer) REFERENCES customers")
    with running(*cfgs):
        sql(
            paris,
            "INSERT INTO orders (id, customer) SELECT n, 'c' || n FROM generate_series(1, 5) n",
        )
        wait_for(lambda: converged(cfgs) and len(rows(cfgs[2])) == 5, 30, "five rows everywhere")

        for statement in ("TRUNCATE orders", "TRUNCATE customers CASCADE"):
            with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:
                sql(paris, statement)
            assert "TRUNCATE of public.orders refused" in str(refused.value)
            assert "DELETE its rows" in (refused.value.diag.message_hint or "")
        assert len(rows(sites["PARIS"])) == 5  # the whole statement was rolled back
        assert sql(paris, "SELECT count(*) FROM customers")[0][0] == 5

        sql(paris, "DELETE FROM orders")
        wait_for(
            lambda: all(rows(c) == [] and outbox_empty(c) for c in cfgs),
            30,
            "the deletes applied everywhere, outboxes drained",
        )
    assert differing(sites) == []
    for cfg in cfgs:
        tombstones = sql(db_of(cfg), "SELECT count(*) FROM bridge_row_version WHERE deleted")
        assert tombstones == [(5,)], cfg.site


def test_a_truncate_marked_as_bridges_own_empties_one_site_only(sites: dict[str, Config]) -> None:
    """The documented way to empty a table at one site on purpose (before reloading it):
    nothing is sent, and `bridge verify` shows that the sites differ."""
    cfgs = list(sites.values())
    with running(*cfgs):
        sql(db_of(sites["LONDON"]), "INSERT INTO orders (id, customer) VALUES (1, 'a'), (2, 'b')")
        wait_for(lambda: converged(cfgs) and len(rows(cfgs[0])) == 2, 30, "two rows everywhere")
        paris = psycopg.connect(sites["PARIS"].database_url, autocommit=True)
        with paris as conn, conn.transaction():
            conn.execute("SET LOCAL bridge.applying = 'on'")
            conn.execute("TRUNCATE orders")
        assert outbox_empty(sites["PARIS"])
    assert rows(sites["PARIS"]) == []
    assert len(rows(sites["LONDON"])) == len(rows(sites["MADRID"])) == 2
    assert differing(sites) == ["orders"]
