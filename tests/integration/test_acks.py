"""Acknowledgements back to the emitter (bridge/acks.py), in both modes, against the real
cluster and PostgreSQL: what became of an event at each site shows in the emitter's
bridge_acks and `bridge status --event`; a row a site cannot write is `failed` there with
the reason; in topic mode the archive site records every site's acks; a redelivered event
is acked `duplicate`; a batch is acked in one message per emitter."""

from __future__ import annotations

import json
from typing import Any

import pika
import pytest
from click.testing import CliRunner

from bridge.ackwire import Ack, AckBatch, encode, properties
from bridge.broker import ACKS_EXCHANGE
from bridge.cli import main
from bridge.config import Config
from bridge.dialects import for_url
from tests.conftest import amqp_url_for, db_of, env_of, running, sql, wait_for
from tests.integration.test_sync import event_body

pytestmark = pytest.mark.integration

CHECK = "ALTER TABLE orders ADD CONSTRAINT ak_amount_below_100 CHECK (amount < 100)"


def acks(cfg: Config, event_id: str) -> dict[str, tuple[str, str | None]]:
    return {
        site: (status, reason)
        for site, status, reason in sql(
            db_of(cfg),
            "SELECT site, status, reason FROM bridge_acks WHERE event_id = %s",
            event_id,
        )
    }


def applied_id(cfg: Config, origin: str, key: int) -> str:
    """The id of `origin`'s insert of row `key`, from the inbox of a site that applied it."""

    def find() -> str | None:
        found = sql(
            db_of(cfg),
            "SELECT i.event_id::text FROM bridge_inbox i JOIN bridge_row_version v "
            "ON v.event_id = i.event_id WHERE i.origin = %s AND v.row_key = %s::jsonb",
            origin,
            json.dumps({"id": key}),
        )
        return found[0][0] if found else None

    found: str = wait_for(find, 30, f"{origin}'s row {key} applied at {cfg.site}")
    return found


def status(cfg: Config, mode: str, *args: str) -> str:
    out = CliRunner().invoke(main, ["status", *args], env=env_of(cfg, acks=mode))
    assert out.exit_code == 0, out.output
    return out.output


@pytest.fixture(params=["direct", "topic"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_acks_reach_the_emitter(make_sites: Any, fresh_topology: Any, mode: str) -> None:
    cfgs = make_sites(acks=mode)
    paris, london, madrid = cfgs["PARIS"], cfgs["LONDON"], cfgs["MADRID"]
    sql(db_of(madrid), CHECK)
    # what LONDON tells PARIS, seen on the way (topic mode: a queue of the test's own)
    seen = fresh_topology.queue_declare("", exclusive=True).method.queue
    fresh_topology.queue_bind(seen, ACKS_EXCHANGE, routing_key="PARIS.LONDON")
    # in topic mode the archive (PARIS's archiver) acks what it stored, as PARIS_HISTO
    histo = {"PARIS_HISTO": ("applied", None)} if mode == "topic" else {}
    with running(paris, london, madrid) as bridges:
        # applied everywhere
        sql(db_of(paris), "INSERT INTO orders (id, customer, amount) VALUES (1, 'a', 5)")
        first = applied_id(london, "PARIS", 1)
        wait_for(
            lambda: (
                acks(paris, first)
                == {"LONDON": ("applied", None), "MADRID": ("applied", None), **histo}
            ),
            30,
            "PARIS told that LONDON and MADRID applied its insert",
        )
        out = status(paris, mode, "--event", first)
        assert "LONDON       applied" in out and "MADRID       applied" in out, out
        assert ("PARIS_HISTO  applied" in out) == (mode == "topic"), out

        # MADRID cannot write the row (its CHECK constraint): failed there, with the reason
        sql(db_of(paris), "INSERT INTO orders (id, customer, amount) VALUES (2, 'b', 500)")
        second = applied_id(london, "PARIS", 2)
        wait_for(lambda: len(acks(paris, second)) == 2 + len(histo), 30, "every ack of the second")
        said = acks(paris, second)
        assert said["LONDON"] == ("applied", None)
        assert said["MADRID"][0] == "failed"
        assert "ak_amount_below_100" in str(said["MADRID"][1])
        out = status(paris, mode, "--event", second)
        assert "LONDON       applied" in out and "MADRID       failed" in out, out
        assert "ak_amount_below_100" in out
        summary = status(paris, mode)
        assert "acked_failures     1 in the last 24 h" in summary and second in summary, summary

        # an event LONDON emitted: acked to LONDON; in topic mode recorded at the archive too
        sql(db_of(london), "INSERT INTO orders (id, customer, amount) VALUES (3, 'c', 5)")
        third = applied_id(madrid, "LONDON", 3)
        wait_for(
            lambda: (
                acks(london, third)
                == {"PARIS": ("applied", None), "MADRID": ("applied", None), **histo}
            ),
            30,
            "LONDON told that PARIS and MADRID applied its insert",
        )
        if mode == "topic":
            wait_for(
                lambda: acks(paris, third) == acks(london, third),
                30,
                "the archive site recording LONDON's acks",
            )
        else:
            assert acks(paris, third) == {}

        # a batch is acked in one message per emitter: 50 rows of one transaction, acked
        # by LONDON and MADRID in one message each
        def messages() -> int:
            return int(bridges["PARIS"].stats.snapshot().get("ack_messages_received", 0))

        before = messages()
        sql(
            db_of(paris),
            "INSERT INTO orders (id, customer, amount) SELECT g, 'many', 1 "
            "FROM generate_series(100, 149) AS g",
        )
        wait_for(
            lambda: (
                sql(
                    db_of(paris),
                    "SELECT count(*) FROM bridge_acks "
                    "WHERE origin = 'PARIS' AND status = 'applied' "
                    "AND site IN ('LONDON', 'MADRID')",
                )[0][0]
                == 2 + 1 + 100
            ),  # the first event's two, the second's one, the 50 rows' 100
            30,
            "LONDON's and MADRID's acks of the 50 rows",
        )
        # every ack of the 50 is recorded: the messages that carried them are counted (and
        # in topic mode the archive's)
        expected = before + 2 + len(histo)
        wait_for(lambda: messages() >= expected, 30, "the messages counted")
        assert messages() == expected

        # a redelivery of the first event to LONDON (straight into its queue, as PARIS's
        # broker user may through the default exchange): acked `duplicate`; with the
        # earlier ack forgotten, that is what PARIS records
        sql(db_of(paris), "DELETE FROM bridge_acks WHERE event_id = %s AND site = 'LONDON'", first)
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url_for("PARIS")))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(
            "",
            "SITE_LONDON",
            event_body("PARIS", id_=first, key=1, customer="a", amount="5"),
            pika.BasicProperties(user_id="paris", delivery_mode=2, message_id=first),
        )
        conn.close()
        wait_for(
            lambda: acks(paris, first).get("LONDON") == ("duplicate", None),
            30,
            "LONDON's duplicate ack",
        )

    if mode == "topic":
        # every message LONDON sent PARIS: one per batch (the three single rows, the 50 and
        # the duplicate), each with its events' acks
        messages = []
        while True:
            method, props, body = fresh_topology.basic_get(seen, auto_ack=True)
            if method is None:
                break
            assert props.user_id == "london"
            messages.append(json.loads(body))
        assert [len(m["acks"]) for m in messages] == [1, 1, 50, 1]
        assert {m["site"] for m in messages} == {"LONDON"}


def test_a_duplicate_ack_does_not_hide_what_an_earlier_ack_said(sites: Any) -> None:
    paris = sites["PARIS"]
    dialect = for_url(paris.database_url)
    record = dialect.render("ack_record")
    event_id = "0b6f1b7e-2c1a-4d3e-9f00-0123456789ab"

    def say(status: str, reason: str | None = None) -> None:
        with dialect.connect(paris.database_url) as conn:
            conn.execute(
                record,
                {
                    "id": event_id,
                    "site": "MADRID",
                    "origin": "PARIS",
                    "status": status,
                    "reason": reason,
                },
            )

    say("waiting", "waiting: parent")
    say("applied")  # waiting -> applied
    assert acks(paris, event_id) == {"MADRID": ("applied", None)}
    say("duplicate")
    assert acks(paris, event_id) == {"MADRID": ("applied", None)}


def test_a_forged_ack_is_dropped(make_sites: Any, fresh_topology: Any) -> None:
    """MADRID's broker user cannot speak for LONDON: RabbitMQ refuses a user_id that is not
    the connection's, and an ack naming another sender than its user_id is dropped."""
    cfgs = make_sites()
    paris = cfgs["PARIS"]
    event_id = "0b6f1b7e-2c1a-4d3e-9f00-0123456789ab"
    forged = encode(AckBatch("PARIS", "LONDON", (Ack(event_id, "applied"),)))
    honest = encode(AckBatch("PARIS", "MADRID", (Ack(event_id, "applied"),)))
    with running(paris):
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url_for("MADRID")))
        ch = conn.channel()
        ch.confirm_delivery()
        for body in (forged, honest):
            ch.basic_publish("", "SITE_PARIS.acks", body, properties("MADRID"))
        conn.close()
        wait_for(lambda: acks(paris, event_id), 30, "MADRID's ack recorded")
        assert acks(paris, event_id) == {"MADRID": ("applied", None)}


def test_mariadb_sites_ack_and_record(fresh_topology: Any) -> None:
    """LONDON and MADRID on MariaDB: they ack PARIS's (PostgreSQL) events, one of them
    `failed` (MADRID's CHECK constraint), and LONDON records its own events' acks in its
    MariaDB bridge_acks, read back by status's library functions."""
    from bridge import status as status_mod
    from tests.federation import app_sql, make_federation

    cfgs = make_federation("ak_acks_mariadb", "mariadb")
    paris, london, madrid = cfgs["PARIS"], cfgs["LONDON"], cfgs["MADRID"]
    app_sql(madrid, CHECK)
    with running(paris, london, madrid):
        app_sql(paris, "INSERT INTO orders (id, customer, amount) VALUES (1, 'a', 500)")
        first = wait_for(
            lambda: sql(db_of(paris), "SELECT event_id::text FROM bridge_acks LIMIT 1"),
            30,
            "a MariaDB site's ack at PARIS",
        )[0][0]
        wait_for(lambda: len(acks(paris, first)) == 2, 30, "both MariaDB sites' acks")
        said = acks(paris, first)
        assert said["LONDON"] == ("applied", None)
        assert said["MADRID"][0] == "failed" and "ak_amount_below_100" in str(said["MADRID"][1])

        app_sql(london, "INSERT INTO orders (id, customer, amount) VALUES (2, 'b', 5)")

        def london_acks() -> list[tuple[Any, ...]]:
            return app_sql(london, "SELECT event_id, site, status FROM bridge_acks")

        rows = wait_for(lambda: len(london_acks()) == 2 and london_acks(), 30, "LONDON's acks")
        assert {(site, status) for _, site, status in rows} == {
            ("PARIS", "applied"),
            ("MADRID", "applied"),
        }
        dialect = for_url(london.database_url)
        with dialect.connect(london.database_url) as conn:
            seen = status_mod.event_acks(london, dialect, conn, rows[0][0])
            assert [(d.site, d.status) for d in seen] == [
                ("PARIS", "applied"),
                ("MADRID", "applied"),
            ]
            assert status_mod.problems(dialect, conn).total == 0


def test_a_child_before_its_parent_is_acked_waiting_then_applied(
    make_sites: Any, fresh_topology: Any
) -> None:
    from tests.integration.test_foreign_keys import FAMILY, TABLES, publish_reordered

    sites = make_sites(FAMILY.format(on_delete=""), tables=TABLES)
    paris, madrid = sites["PARIS"], sites["MADRID"]
    sql(db_of(paris), "INSERT INTO parents VALUES (1, 'parent')")
    sql(db_of(paris), "INSERT INTO children VALUES (10, 1, 'child')")
    (child,) = [s["id"] for s in publish_reordered(paris, [1])]  # the child alone
    with running(madrid):
        wait_for(
            lambda: (
                fresh_topology.queue_declare("SITE_PARIS.acks", passive=True).method.message_count
            ),
            30,
            "MADRID's ack of the child in PARIS's acks queue",
        )
    method, props, body = fresh_topology.basic_get("SITE_PARIS.acks")
    assert props.user_id == "madrid"
    (ack,) = json.loads(body)["acks"]
    assert ack["id"] == child and ack["status"] == "waiting" and "waiting:" in ack["reason"]
    fresh_topology.basic_nack(method.delivery_tag, requeue=True)
    # PARIS's bridge records the waiting ack, publishes the parent; MADRID applies the
    # parent, then the child, and acks it again: applied
    with running(paris, madrid):
        wait_for(
            lambda: acks(paris, child).get("MADRID") == ("applied", None),
            30,
            "MADRID's second ack of the child",
        )
