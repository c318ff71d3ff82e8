"""Three PostgreSQL sites converge through the real 3-node cluster behind HAProxy."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pika
import pytest

from bridge import verify
from bridge.broker import EVENTS_EXCHANGE
from tests.conftest import (
    SITES,
    amqp_url_for,
    converged,
    db_of,
    make_config,
    outbox_empty,
    rows,
    running,
    sql,
    wait_for,
)

pytestmark = pytest.mark.integration


PARIS, LONDON, MADRID = SITES


def assert_verified(sites):
    peers = {c.site: c.database_url for c in sites.values() if c.site != PARIS}
    sums, differing = verify.verify(sites["PARIS"], peers)
    assert differing == [], sums
    compared = verify.compare(sites["PARIS"], peers, chunk_rows=3)
    assert compared.ok, compared.to_json()


def test_insert_update_delete_at_each_site_converge(sites):
    cfgs = list(sites.values())
    with running(*cfgs):
        for n, cfg in enumerate(cfgs):
            db = db_of(cfg)
            base = 100 * (n + 1)
            sql(
                db,
                "INSERT INTO orders (id, customer, amount, note, updated_at, blob) "
                "VALUES (%s, %s, 12.5, 'héllo ✓', now(), '\\x00ff'), "
                "(%s, %s, 1, NULL, NULL, NULL), (%s, %s, 99999999.9999, 'x', now(), NULL)",
                base,
                cfg.site,
                base + 1,
                cfg.site,
                base + 2,
                cfg.site,
            )
            sql(db, "UPDATE orders SET amount = amount + 1, note = 'updated' WHERE id = %s", base)
            sql(db, "DELETE FROM orders WHERE id = %s", base + 1)
        wait_for(lambda: converged(cfgs) and len(rows(cfgs[0])) == 6, 60, "convergence")
        assert_verified(sites)
        wait_for(lambda: all(outbox_empty(c) for c in cfgs), 30, "outboxes drained by echoes")
        # every local change of every site is archived exactly once (3 sites x 5 events)
        wait_for(
            lambda: sql(db_of(sites["PARIS"]), "SELECT count(*) FROM bridge_archive")[0][0] == 15,
            30,
            "archive holds the 15 events",
        )
    paris_rows = {r[0]: r for r in rows(sites["PARIS"])}
    assert paris_rows[100][3] == "updated"
    assert str(paris_rows[100][2]) == "13.5000"
    assert bytes(paris_rows[100][5]) == b"\x00\xff"
    assert 101 not in paris_rows
    counts = sql(
        db_of(sites["PARIS"]), "SELECT count(*), count(DISTINCT event_id) FROM bridge_archive"
    )[0]
    assert counts[0] == counts[1] == 15


def test_applied_change_is_not_captured_again(sites):
    cfgs = list(sites.values())
    with running(*cfgs):
        sql(db_of(sites["LONDON"]), "INSERT INTO orders (id, customer) VALUES (1, 'a')")
        wait_for(lambda: converged(cfgs) and rows(cfgs[0]), 30, "convergence")
        wait_for(lambda: all(outbox_empty(c) for c in cfgs), 30, "outboxes drained")
        wait_for(
            lambda: sql(db_of(sites["PARIS"]), "SELECT count(*) FROM bridge_archive")[0][0] == 1,
            30,
            "the one event archived",
        )
        # nothing but the one change was ever published: no echo loop
        for c in cfgs:
            inbox = sql(db_of(c), "SELECT origin FROM bridge_inbox")
            assert inbox == ([] if c.site == LONDON else [(LONDON,)])


def publish_raw(body: bytes, user_site: str, **props) -> None:
    """Publish as a site's broker user, bypassing the dispatcher."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url_for(user_site)))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish(
        EVENTS_EXCHANGE,
        "",
        body,
        pika.BasicProperties(user_id=user_site.lower(), delivery_mode=2, **props),
    )
    conn.close()


def event_body(
    origin: str,
    id_: str | None = None,
    table: str = "orders",
    key: int = 7,
    ts: str = "2026-01-01T00:00:00.000000Z",
    op: str = "insert",
    **row,
) -> bytes:
    data = {
        "table": table,
        "op": op,
        "key": {"id": key},
        "row": {
            "id": key,
            "customer": "c",
            "amount": "1.5",
            "note": None,
            "updated_at": None,
            "blob": None,
            **row,
        },
    }
    return json.dumps(
        {
            "id": id_ or str(uuid.uuid4()),
            "timestamp": ts,
            "origin": origin,
            "type": f"{table}.{op}",
            "data": data,
        }
    ).encode()


def test_duplicate_delivery_is_applied_once(sites):
    cfgs = list(sites.values())
    body = event_body(LONDON, key=7)
    with running(*cfgs) as bridges:
        publish_raw(body, LONDON)
        publish_raw(body, LONDON)
        publish_raw(event_body(LONDON, key=8), LONDON)  # a marker after the duplicate
        wait_for(
            lambda: len(rows(sites["MADRID"])) == 2 and len(rows(sites["PARIS"])) == 2,
            30,
            "both events applied",
        )
        wait_for(
            lambda: bridges[MADRID].stats.snapshot().get("duplicate") == 1,
            30,
            "the duplicate seen and skipped at MADRID",
        )
    for site in ("PARIS", "MADRID"):
        assert sql(db_of(sites[site]), "SELECT count(*) FROM bridge_inbox")[0][0] == 2
        assert sql(db_of(sites[site]), "SELECT count(*) FROM bridge_conflicts")[0][0] == 0
    assert bridges[PARIS].stats.snapshot().get("duplicate") == 1
    archive = sql(db_of(sites["PARIS"]), "SELECT count(*) FROM bridge_archive")[0][0]
    assert archive == 2


def test_concurrent_updates_converge_to_the_later_write(sites):
    cfgs = list(sites.values())
    paris, london = db_of(sites["PARIS"]), db_of(sites["LONDON"])
    with running(*cfgs):
        sql(paris, "INSERT INTO orders (id, customer, note) VALUES (1, 'a', 'v0')")
        wait_for(lambda: converged(cfgs) and rows(cfgs[1]), 30, "initial row everywhere")
    # bridges down: both sites update the same row, LONDON last
    sql(paris, "UPDATE orders SET note = 'paris' WHERE id = 1")
    sql(london, "UPDATE orders SET note = 'london' WHERE id = 1")
    with running(*cfgs):
        wait_for(
            lambda: converged(cfgs) and all(outbox_empty(c) for c in cfgs),
            60,
            "convergence after concurrent updates",
        )
    assert rows(sites["MADRID"])[0][3] == "london"
    assert_verified(sites)
    # the losing write is visible as a conflict where it arrived too late
    lost = (
        sql(paris, "SELECT incoming_origin, reason FROM bridge_conflicts")
        + sql(london, "SELECT incoming_origin, reason FROM bridge_conflicts")
        + sql(db_of(sites["MADRID"]), "SELECT incoming_origin, reason FROM bridge_conflicts")
    )
    assert PARIS in [o for o, _ in lost]


def test_delete_is_not_resurrected_by_an_older_update_arriving_late(sites):
    cfgs = list(sites.values())
    paris, london, madrid = (db_of(sites[s]) for s in ("PARIS", "LONDON", "MADRID"))
    with running(*cfgs):
        sql(paris, "INSERT INTO orders (id, customer, note) VALUES (5, 'a', 'v0')")
        wait_for(lambda: converged(cfgs) and rows(cfgs[2]), 30, "initial row everywhere")
    sql(london, "UPDATE orders SET note = 'late' WHERE id = 5")  # older change, held back
    sql(paris, "DELETE FROM orders WHERE id = 5")  # newer change
    with running(sites["PARIS"], sites["MADRID"]):
        wait_for(lambda: not rows(sites["MADRID"]), 30, "delete applied at MADRID")
    with running(*cfgs):  # LONDON's older update now arrives after the delete
        wait_for(lambda: all(outbox_empty(c) for c in cfgs) and converged(cfgs), 60, "convergence")
    for db in (paris, london, madrid):
        assert sql(db, "SELECT count(*) FROM orders")[0][0] == 0
        tomb = sql(
            db, "SELECT deleted, origin FROM bridge_row_version WHERE row_key = '{\"id\": 5}'"
        )
        assert tomb == [(True, PARIS)]
    reasons = sql(madrid, "SELECT reason FROM bridge_conflicts")
    assert reasons and "older than the local version" in reasons[0][0]


def dlq_messages(channel, queue):
    found = []
    while True:
        method, props, body = channel.basic_get(f"{queue}.dlq", auto_ack=True)
        if method is None:
            return found
        found.append((props.headers or {}, body))


@pytest.mark.parametrize(
    ("body", "user", "reason"),
    [
        (b"{not json", LONDON, "not JSON"),
        (json.dumps({"id": str(uuid.uuid4()), "origin": LONDON}).encode(), LONDON, "missing field"),
        (event_body(LONDON, table="salaries"), LONDON, "not in site"),
        (event_body(PARIS), LONDON, "does not match the publishing broker user"),
        (event_body(LONDON, bogus="x"), LONDON, "unknown column"),
    ],
    ids=["not-json", "missing-field", "unknown-table", "forged-origin", "unknown-column"],
)
def test_bad_input_is_dead_lettered_and_the_flow_continues(
    sites, fresh_topology, body, user, reason
):
    with running(sites["MADRID"]):
        publish_raw(body, user)
        publish_raw(event_body(LONDON, key=9), LONDON)  # a good one after the bad one
        wait_for(lambda: rows(sites["MADRID"]), 30, "the good event applied")
    queue = sites["MADRID"].queue
    got = wait_for(lambda: dlq_messages(fresh_topology, queue), 10, "dead letter")
    assert len(got) == 1
    headers, dead_body = got[0]
    assert reason in headers["x-bridge-reason"]
    assert headers["x-bridge-queue"] == queue
    assert dead_body == body
    assert [r[0] for r in rows(sites["MADRID"])] == [9]


def test_local_change_after_a_remote_change_from_a_clock_ahead_wins_everywhere(sites):
    """LONDON's clock is an hour ahead. MADRID applies LONDON's change, then changes the
    row itself: that later change must win at every site, not only at MADRID."""
    paris, madrid = sites["PARIS"], sites["MADRID"]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with running(paris, madrid):
        publish_raw(event_body(LONDON, key=7, ts=future, customer="from the future"), LONDON)
        wait_for(lambda: rows(madrid) and rows(paris), 30, "LONDON's change applied")
        sql(db_of(madrid), "UPDATE orders SET customer = 'madrid, later' WHERE id = 7")
        wait_for(lambda: all(outbox_empty(c) for c in (paris, madrid)), 30, "echo back")
        wait_for(lambda: converged([paris, madrid]), 30, "PARIS and MADRID agree")
    assert rows(paris)[0][1] == "madrid, later"
    stamp = sql(db_of(paris), "SELECT ts FROM bridge_row_version WHERE origin = %s", MADRID)
    assert stamp and stamp[0][0] > dt.datetime.fromisoformat(future.replace("Z", "+00:00"))


def test_row_refused_by_a_local_constraint_is_a_conflict_and_the_batch_goes_on(sites):
    madrid = sites["MADRID"]
    sql(db_of(madrid), "ALTER TABLE orders ADD CONSTRAINT positive CHECK (amount >= 0)")
    with running(madrid) as bridges:
        # one batch: a good event, one MADRID refuses, another good one
        publish_raw(event_body(LONDON, key=1), LONDON)
        publish_raw(event_body(LONDON, key=2, amount="-5"), LONDON)
        publish_raw(event_body(LONDON, key=3), LONDON)
        wait_for(lambda: len(rows(madrid)) == 2, 30, "the two good events applied")
        wait_for(lambda: bridges[MADRID].stats.snapshot().get("conflict") == 1, 30, "conflict")
    assert [r[0] for r in rows(madrid)] == [1, 3]
    conflict = sql(db_of(madrid), "SELECT row_key::text, reason FROM bridge_conflicts")
    assert conflict[0][0] == '{"id": 2}'
    assert "CheckViolation" in conflict[0][1]
    # recorded in the inbox: a redelivery of it is not retried forever
    assert sql(db_of(madrid), "SELECT count(*) FROM bridge_inbox")[0][0] == 3


@pytest.mark.parametrize("policy", ["lww", "none", "manual", "column:updated_at"])
def test_an_older_change_delivered_late_never_rolls_the_row_back(sites, policy):
    """RabbitMQ may return a crashed consumer's messages out of order: LONDON's update of
    a row reaches MADRID before LONDON's insert of it. Under every policy the insert is
    skipped as superseded (not applied, not a conflict) and the row keeps the update."""
    madrid = make_config("MADRID", db_of(sites["MADRID"]), tables={"orders": policy})
    first = {"ts": "2026-01-01T00:00:00.000000Z", "updated_at": "2026-01-01T00:00:00Z"}
    later = {"ts": "2026-01-01T00:00:01.000000Z", "updated_at": "2026-01-01T00:00:01Z"}
    with running(madrid) as bridges:
        publish_raw(event_body(LONDON, key=5, op="update", customer="later", **later), LONDON)
        wait_for(lambda: rows(madrid), 30, "the update applied")
        publish_raw(event_body(LONDON, key=5, customer="first", **first), LONDON)
        wait_for(lambda: bridges[MADRID].stats.snapshot().get("superseded") == 1, 30, "superseded")
    assert [(r[0], r[1]) for r in rows(madrid)] == [(5, "later")]
    assert sql(db_of(madrid), "SELECT count(*) FROM bridge_conflicts")[0][0] == 0
    assert sql(db_of(madrid), "SELECT count(*) FROM bridge_inbox")[0][0] == 2
