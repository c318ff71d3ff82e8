"""Drain markers (bridge/marker.py), what `bridge bootstrap` waits on: a site records a
marker only once everything its queue held before it is applied and committed."""

from __future__ import annotations

import pytest

from bridge import marker
from bridge.dialects import for_url
from tests.conftest import db_of, running, sql, wait_for

pytestmark = pytest.mark.integration


def recorded(cfg) -> str | None:
    dialect = for_url(cfg.database_url)
    with dialect.connect(cfg.database_url) as conn:
        return marker.recorded(dialect, conn)


def inbox(cfg) -> int:
    return int(sql(db_of(cfg), "SELECT count(*) FROM bridge_inbox")[0][0])


def test_a_marker_is_recorded_after_every_message_before_it_is_applied(sites):
    paris, london = sites["PARIS"], sites["LONDON"]
    with running(paris):
        # 40 transactions of 25 rows: 1,000 events waiting in SITE_LONDON, LONDON stopped
        for n in range(40):
            sql(
                db_of(paris),
                "INSERT INTO orders (id, customer) "
                "SELECT g, 'c' FROM generate_series(%s::int, %s::int) AS g",
                25 * n + 1,
                25 * n + 25,
            )
        wait_for(
            lambda: (
                sql(db_of(paris), "SELECT count(*) FROM bridge_outbox WHERE published_at IS NULL")[
                    0
                ][0]
                == 0
            ),
            60,
            "published",
        )
        sent = marker.publish(london, "SITE_LONDON")
        assert recorded(london) is None
        with running(london):
            wait_for(lambda: recorded(london) == sent, 60, "LONDON recorded the marker")
            # read at once: the marker came after the 1,000 events, all committed before it
            assert inbox(london) == 1000
    assert sql(db_of(london), "SELECT count(*) FROM orders")[0][0] == 1000
