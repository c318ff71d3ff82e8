"""Two bridges started for one site, through the real broker: each change is still
published by one dispatcher and applied once.

The dispatcher lease (a PostgreSQL advisory lock) refuses the second dispatcher, which
retries and takes over when the first stops. Each queue is single-active-consumer: the
second bridge's consumer and archiver wait, inactive, until the first's go away. Even if
both applied, the inbox row written in the apply transaction would make the second apply
of an event a no-op. A test-only audit trigger counts the rows bridge's apply writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bridge import verify
from bridge.config import Config
from bridge.run import Bridge
from bridge.stats import Stats
from tests.conftest import db_of, outbox_empty, running, sql, wait_for

pytestmark = pytest.mark.integration

# one row per row that bridge's apply writes into orders
AUDIT = """
CREATE TABLE apply_audit (n bigserial PRIMARY KEY, id bigint, op text);
CREATE FUNCTION apply_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bridge.applying', true) = 'on' THEN
        INSERT INTO apply_audit (id, op) VALUES (COALESCE(NEW.id, OLD.id), TG_OP);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER apply_audit AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION apply_audit();
"""


@contextmanager
def stopped_at_the_end(bridge: Bridge) -> Iterator[Bridge]:
    try:
        yield bridge
    finally:
        bridge.stop()


def count(cfg: Config, query: str) -> int:
    return int(sql(db_of(cfg), query)[0][0])


def test_two_bridges_for_one_site_publish_and_apply_each_change_once(
    sites: dict[str, Config],
) -> None:
    paris, london, madrid = sites["PARIS"], sites["LONDON"], sites["MADRID"]
    sql(db_of(paris), AUDIT)

    def write(at: Config, first: int, n: int) -> None:
        for key in range(first, first + n):  # one transaction each
            sql(db_of(at), "INSERT INTO orders (id, customer) VALUES (%s, %s)", key, at.site)
        sql(
            db_of(at),
            "UPDATE orders SET note = 'updated' WHERE id >= %s AND id < %s",
            first,
            first + n,
        )

    first, second = Bridge(paris, Stats()), Bridge(paris, Stats())
    with running(london, madrid), stopped_at_the_end(first), stopped_at_the_end(second):
        first.start()
        second.start()  # the same site, started again while it runs
        wait_for(
            lambda: second.stats.snapshot().get("dispatcher_reconnects", 0) >= 1,
            30,
            "the second dispatcher refused the lease",
        )
        write(london, 1000, 30)
        write(paris, 2000, 30)
        wait_for(
            lambda: count(paris, "SELECT count(*) FROM bridge_inbox") == 60 and outbox_empty(paris),
            60,
            "PARIS applied LONDON's changes and its own came back",
        )
        # all of it done by the first bridge: the second was idle
        idle = second.stats.snapshot()
        assert not {"published", "applied", "archived", "echo"} & set(idle), idle
        assert first.stats.snapshot()["applied"] == 60
        first.stop()  # the second takes over
        write(london, 3000, 30)
        write(paris, 4000, 30)
        write(madrid, 5000, 30)
        wait_for(
            lambda: (
                all(count(c, "SELECT count(*) FROM orders") == 150 for c in sites.values())
                and all(outbox_empty(c) for c in sites.values())
                and count(paris, "SELECT count(*) FROM bridge_inbox") == 180
            ),
            90,
            "every change everywhere after the second bridge took over",
        )
        taken_over = second.stats.snapshot()
        assert taken_over["published"] >= 60 and taken_over["applied"] == 120, taken_over
    # every change of another site applied once at PARIS, each of PARIS's sent once
    assert count(paris, "SELECT count(*) FROM apply_audit") == 180
    assert count(paris, "SELECT count(DISTINCT (id, op)) FROM apply_audit") == 180
    assert count(paris, "SELECT count(*) FROM bridge_conflicts") == 0
    for cfg in (london, madrid):
        origins = sql(db_of(cfg), "SELECT count(*) FROM bridge_inbox WHERE origin = 'PARIS'")
        assert origins == [(120,)], cfg.site
    assert count(paris, "SELECT count(*) FROM bridge_archive") == 300
    peers = {c.site: c.database_url for c in (london, madrid)}
    assert verify.verify(paris, peers)[1] == []
