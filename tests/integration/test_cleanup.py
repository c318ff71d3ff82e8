"""`bridge cleanup` against real PostgreSQL: what it deletes, --dry-run, what it refuses, and
a change delivered again after cleanup purged its inbox entry (real broker)."""

from __future__ import annotations

import json

import pika
import pytest
from click.testing import CliRunner

from bridge import cleanup
from bridge.broker import EVENTS_EXCHANGE
from bridge.cli import main
from bridge.config import Config
from bridge.dialects import for_url
from bridge.errors import ConfigError
from tests.conftest import (
    DB_PREFIX,
    create_site_db,
    db_of,
    env_of,
    make_config,
    outbox_empty,
    running,
    setup_site,
    sql,
    wait_for,
)

pytestmark = pytest.mark.integration

DB = DB_PREFIX + "cleanup"
TABLES = ("bridge_archive", "bridge_inbox", "bridge_row_version", "bridge_conflicts", "bridge_acks")


@pytest.fixture
def site():
    """A site with, in each table cleanup purges, rows 100 and 10 days old; the row
    versions also hold a live row 100 days old, which cleanup keeps."""
    create_site_db(DB)
    cfg = make_config("PARIS", DB)
    setup_site(cfg)
    for n, age in ((1, 100), (2, 100), (3, 10)):
        ts = f"clock_timestamp() - interval '{age} days'"
        sql(
            DB,
            "INSERT INTO bridge_archive (event_id, ts, origin, type, event) "
            f"VALUES (gen_random_uuid(), {ts}, 'LONDON', 'orders.insert', '{{}}')",
        )
        sql(
            DB,
            "INSERT INTO bridge_inbox (event_id, origin, applied_at) "
            f"VALUES (gen_random_uuid(), 'LONDON', {ts})",
        )
        sql(
            DB,
            "INSERT INTO bridge_row_version (table_name, row_key, ts, origin, deleted) "
            f"VALUES ('orders', '{{\"id\": {n}}}', {ts}, 'LONDON', true)",
        )
        sql(
            DB,
            "INSERT INTO bridge_acks (event_id, site, origin, status, acked_at) "
            f"VALUES (gen_random_uuid(), 'LONDON', 'PARIS', 'applied', {ts})",
        )
        sql(
            DB,
            "INSERT INTO bridge_conflicts (detected_at, event_id, table_name, row_key, reason, "
            "incoming_ts, incoming_origin, incoming) "
            f"VALUES ({ts}, gen_random_uuid(), 'orders', '{{\"id\": {n}}}', 'lost', {ts}, "
            "'LONDON', '{}')",
        )
    sql(
        DB,
        "INSERT INTO bridge_row_version (table_name, row_key, ts, origin, deleted) "
        "VALUES ('orders', '{\"id\": 4}', clock_timestamp() - interval '100 days', "
        "'LONDON', false)",
    )
    return cfg


def counts() -> dict[str, int]:
    return {t: sql(DB, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


def bridge(cfg, *args):
    return CliRunner().invoke(main, list(args), env=env_of(cfg), catch_exceptions=False)


def test_dry_run_counts_per_table_and_deletes_nothing(site):
    before = counts()
    out = bridge(site, "cleanup", "--older-than", "90d", "--dry-run")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "archive entries           2 would be deleted" in lines
    assert "inbox entries             2 would be deleted" in lines
    assert "tombstones                2 would be deleted" in lines
    assert "ack entries               2 would be deleted" in lines
    assert "conflicts                 2 would be deleted" in lines
    assert "10 row(s) older than 90 days would be deleted (dry run" in out.output
    assert counts() == before


def test_cleanup_deletes_only_what_is_older_than_the_retention(site):
    assert cleanup.cleanup(site, for_url(site.database_url), 30, dry_run=True) == {
        "archive entries": 2,
        "inbox entries": 2,
        "tombstones": 2,
        "conflicts": 2,
        "ack entries": 2,
    }
    out = bridge(site, "cleanup", "--older-than", "30")
    assert out.exit_code == 0, out.output
    assert "tombstones                2 deleted" in out.output.splitlines()
    # the 10-day-old rows stay, and so does the live row's version (not a tombstone)
    assert counts() == {
        "bridge_archive": 1,
        "bridge_inbox": 1,
        "bridge_row_version": 2,
        "bridge_conflicts": 1,
        "bridge_acks": 1,
    }
    assert sql(DB, "SELECT row_key->>'id', deleted FROM bridge_row_version ORDER BY 1") == [
        ("3", True),
        ("4", False),
    ]
    out = bridge(site, "cleanup")  # retention_days, 90: nothing that old is left
    assert out.exit_code == 0, out.output
    assert "0 row(s) older than 90 days deleted" in out.output


def test_cleanup_purges_in_bounded_batches_and_records_its_horizon(site):
    """Batches of one row: each kind is purged in as many transactions as it has rows, the
    counts add up, and the cutoff is recorded first (what a replay is judged against)."""
    dialect = for_url(site.database_url)
    removed = cleanup.cleanup(site, dialect, 30, batch=1)
    assert removed == {
        "archive entries": 2,
        "inbox entries": 2,
        "tombstones": 2,
        "conflicts": 2,
        "ack entries": 2,
    }
    assert counts()["bridge_conflicts"] == 1
    with dialect.connect(site.database_url) as conn:
        horizon = cleanup.cleanup_horizon(dialect, conn)
    now = sql(DB, "SELECT clock_timestamp()")[0][0]
    assert horizon is not None and 29.9 < (now - horizon).total_seconds() / 86400 < 30.1
    # a longer retention later leaves it where it is (it only moves forward)
    cleanup.cleanup(site, dialect, 60)
    with dialect.connect(site.database_url) as conn:
        assert cleanup.cleanup_horizon(dialect, conn) == horizon


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0d", "0 days is too short: the minimum is 1 day"),
        ("0", "0 days is too short: the minimum is 1 day"),
        ("2w", "'2w' is not a number of days: write a whole number of days, 1 or more"),
        ("-5d", "is not a number of days"),
        ("1.5d", "is not a number of days"),
    ],
)
def test_too_short_or_unreadable_retention_is_refused_with_what_is_allowed(site, value, message):
    before = counts()
    out = bridge(site, "cleanup", f"--older-than={value}")
    assert out.exit_code == 2
    assert "--older-than" in out.output
    assert message in " ".join(out.output.split())  # click wraps long lines
    assert counts() == before


def test_the_minimum_holds_for_library_callers_too(site):
    with pytest.raises(ConfigError, match="redelivered event"):
        cleanup.cleanup(site, for_url(site.database_url), 0)


def test_a_change_redelivered_after_cleanup_purged_its_inbox_entry_is_not_applied_again(
    sites: dict[str, Config],
) -> None:
    """LONDON's changes applied at MADRID, their inbox entries purged by cleanup, then
    every one of them delivered again (taken from the archive, as a replay or a site
    coming back with an old queue would): row versions decide. Each of LONDON's changes is
    older than, or the same as, the version of its row from LONDON: superseded, not applied.
    A LONDON change of a row that MADRID changed since is older than MADRID's version: a
    conflict, not applied either."""
    cfgs = list(sites.values())
    london, madrid = db_of(sites["LONDON"]), db_of(sites["MADRID"])
    with running(*cfgs):
        sql(london, "INSERT INTO orders (id, customer) VALUES (1, 'v1'), (2, 'v1'), (3, 'v1')")
        sql(london, "UPDATE orders SET customer = 'v2' WHERE id IN (1, 3)")
        sql(london, "DELETE FROM orders WHERE id = 2")
        wait_for(
            lambda: sql(madrid, "SELECT count(*) FROM bridge_inbox")[0][0] == 3 + 2 + 1,
            30,
            "LONDON's six changes applied at MADRID",
        )
        sql(madrid, "UPDATE orders SET customer = 'madrid' WHERE id = 3")
        wait_for(lambda: all(outbox_empty(c) for c in cfgs), 30, "the outboxes drained")
        wait_for(
            lambda: sql(db_of(sites["PARIS"]), "SELECT count(*) FROM bridge_archive")[0][0] == 7,
            30,
            "the seven changes archived",
        )
    before = sql(madrid, "SELECT * FROM orders ORDER BY id")
    assert [(r[0], r[1]) for r in before] == [(1, "v2"), (3, "madrid")]
    sql(madrid, "UPDATE bridge_inbox SET applied_at = applied_at - interval '2 days'")
    purged = cleanup.cleanup(sites["MADRID"], for_url(sites["MADRID"].database_url), 1)
    assert purged == {
        "archive entries": 0,
        "inbox entries": 6,
        "tombstones": 0,
        "conflicts": 0,
        "ack entries": 0,
    }

    archived = sql(
        db_of(sites["PARIS"]),
        "SELECT event::text FROM bridge_archive WHERE origin = 'LONDON' ORDER BY ts",
    )
    with running(sites["MADRID"]) as bridges:
        for (event,) in archived:
            publish_as(sites["LONDON"], event.encode())
        wait_for(
            lambda: sql(madrid, "SELECT count(*) FROM bridge_inbox")[0][0] == 6,
            30,
            "the six changes delivered again",
        )
    stats = bridges["MADRID"].stats.snapshot()
    # 1 and 2: every change is LONDON's, the row's version too; 3: MADRID's version is later
    assert (stats.get("superseded"), stats.get("conflict"), stats.get("applied")) == (4, 2, None)
    assert sql(madrid, "SELECT * FROM orders ORDER BY id") == before
    lost = sql(madrid, "SELECT row_key->>'id', reason FROM bridge_conflicts ORDER BY id")
    assert [key for key, _ in lost] == ["3", "3"]
    assert all(reason.startswith("older than the local version") for _, reason in lost)


def publish_as(site: Config, body: bytes) -> None:
    """Publish a message as the site's broker user (what its dispatcher does)."""
    event = json.loads(body)
    conn = pika.BlockingConnection(pika.URLParameters(site.amqp_url))
    channel = conn.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        EVENTS_EXCHANGE,
        "",
        body,
        pika.BasicProperties(message_id=event["id"], user_id=site.site.lower(), delivery_mode=2),
    )
    conn.close()
