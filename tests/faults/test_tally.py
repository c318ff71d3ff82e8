"""The tally (tests/faults/tally.py) is what every fault test's "lost 0, applied twice 0"
stands on: here it is shown to catch a loss and a double apply planted on purpose, where
the rows themselves look right."""

from __future__ import annotations

import json

import pika
import pytest

from bridge import verify
from bridge.apply import APPLIED, Applier
from bridge.dialects import for_url
from bridge.event import from_dict
from tests.conftest import AMQP_ADMIN, converged, db_of, outbox_empty, running, sql, wait_for
from tests.faults.harness import depth
from tests.faults.tally import install_audit, tally

pytestmark = pytest.mark.faults


def steal_first(queue: str) -> str:
    """Take the first message of a queue away for good (as a broker losing it would)."""
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1)  # (basic.get is refused: single active consumer)
        for method, props, _body in ch.consume(queue, inactivity_timeout=30):
            assert method is not None, f"{queue} is empty"
            ch.basic_ack(method.delivery_tag)
            ch.cancel()
            return str(props.message_id)
        raise AssertionError("unreachable")
    finally:
        conn.close()


def two_changes_of_one_row(sites) -> None:
    """PARIS inserts a row, then changes it with an upsert that carries the whole row, so
    a site that never gets the insert still ends with the same row."""
    paris = db_of(sites["PARIS"])
    sql(paris, "INSERT INTO orders (id, customer) VALUES (1, 'first')")
    sql(
        paris,
        "INSERT INTO orders (id, customer) VALUES (1, 'second') "
        "ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer",
    )


def test_an_insert_lost_at_a_site_where_the_next_change_recreates_the_row_is_caught(sites):
    cfgs = list(sites.values())
    paris, london, madrid = sites["PARIS"], sites["LONDON"], sites["MADRID"]
    install_audit(cfgs)
    with running(paris, madrid):  # LONDON's bridge is away: its queue keeps both events
        two_changes_of_one_row(sites)
        wait_for(lambda: depth(london.queue) == 2, 60, "both events queued for LONDON")
        stolen = steal_first(london.queue)
        wait_for(lambda: outbox_empty(paris), 60, "PARIS's echoes back")
    with running(*cfgs):
        wait_for(lambda: converged(cfgs) and depth(london.queue) == 0, 60, "LONDON done")
    # the rows cannot tell: LONDON holds the row the update carried
    _, differing = verify.verify(paris, {c.site: c.database_url for c in (london, madrid)})
    assert differing == []
    t = tally(cfgs, 2, {})
    print(f"\n{t.line()}")
    assert (t.lost, t.applied_twice) == (1, 0), t.problems()
    assert t.sites["LONDON"].missing == [f"PARIS insert id 1 {stolen}"]
    with pytest.raises(AssertionError, match="LONDON: 1 never received"):
        t.check()


def test_an_event_applied_twice_is_caught(sites):
    cfgs = list(sites.values())
    paris, madrid = sites["PARIS"], sites["MADRID"]
    install_audit(cfgs)
    with running(*cfgs):
        two_changes_of_one_row(sites)
        wait_for(lambda: converged(cfgs) and all(outbox_empty(c) for c in cfgs), 60, "in sync")
    t = tally(cfgs, 2, {})
    t.check()  # as it should be, first
    # a bug that forgets an event was applied: its inbox row and the row's version gone,
    # the event is applied a second time
    (insert,) = sql(
        db_of(paris), "SELECT event FROM bridge_archive WHERE event #>> '{data,op}' = 'insert'"
    )
    event = from_dict(insert[0] if isinstance(insert[0], dict) else json.loads(insert[0]))
    sql(db_of(madrid), "DELETE FROM bridge_inbox WHERE event_id = %s", event.id)
    sql(db_of(madrid), "DELETE FROM bridge_row_version")
    applier = Applier(madrid, for_url(madrid.database_url))
    try:
        assert [o.status for o in applier.apply_batch([event])] == [APPLIED]
    finally:
        applier.close()
    t = tally(cfgs, 2, {})
    print(f"\n{t.line()}")
    assert (t.lost, t.applied_twice) == (0, 1), t.problems()
    with pytest.raises(AssertionError, match="MADRID: 1 applied twice"):
        t.check()
