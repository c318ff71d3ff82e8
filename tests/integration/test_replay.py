"""`bridge replay` through the real cluster: archived events sent again to one site only.

- replaying what the target already has changes nothing (every event a duplicate);
- a site whose queue lost events is restored by a replay while the others keep writing;
- a replay older than what cleanup purged at the target applies nothing (an insert of a
  row deleted since does not bring it back);
- only the archive site's broker user may replay; the others' queues see nothing.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pika
import pytest
from click.testing import CliRunner

from bridge import cleanup, replay, verify
from bridge import event as events
from bridge.cli import main
from bridge.config import Config
from bridge.dialects import for_url
from bridge.errors import BrokerError, ConfigError
from tests.conftest import (
    AMQP_ADMIN,
    converged,
    db_of,
    env_of,
    outbox_empty,
    rows,
    running,
    sql,
    wait_for,
)

pytestmark = pytest.mark.integration


def archived_count(paris: Config) -> int:
    return int(sql(db_of(paris), "SELECT count(*) FROM bridge_archive")[0][0])


def inbox_count(cfg: Config) -> int:
    return int(sql(db_of(cfg), "SELECT count(*) FROM bridge_inbox")[0][0])


def queue_depth(queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def assert_verified(sites: dict[str, Config]) -> None:
    peers = {c.site: c.database_url for k, c in sites.items() if k != "PARIS"}
    sums, differing = verify.verify(sites["PARIS"], peers)
    assert differing == [], sums


def write_some(cfg: Config, base: int, n: int) -> None:
    db = db_of(cfg)
    for i in range(base, base + n):
        sql(db, "INSERT INTO orders (id, customer, amount) VALUES (%s, %s, %s)", i, cfg.site, i)
    sql(db, "UPDATE orders SET note = 'updated' WHERE id BETWEEN %s AND %s", base, base + n // 2)
    sql(db, "DELETE FROM orders WHERE id = %s", base + n - 1)


def test_replay_of_what_the_target_has_changes_nothing(sites):
    cfgs = list(sites.values())
    paris, london = sites["PARIS"], sites["LONDON"]
    with running(*cfgs) as bridges:
        for n, cfg in enumerate(cfgs):
            write_some(cfg, 1000 * (n + 1), 20)
        wait_for(lambda: converged(cfgs) and len(rows(paris)) == 57, 60, "convergence")
        wait_for(lambda: archived_count(paris) == 3 * 32, 60, "every event archived")
        wait_for(lambda: all(outbox_empty(c) for c in cfgs), 60, "outboxes drained")
        before_rows, before_inbox = rows(london), inbox_count(london)
        conflicts = sql(db_of(london), "SELECT count(*) FROM bridge_conflicts")[0][0]

        selection = replay.Selection(target="LONDON")
        counts = replay.count(paris, selection)
        assert sum(counts.values()) == 2 * 32  # the others' events; LONDON's own are echoes
        assert {origin for origin, _ in counts} == {"PARIS", "MADRID"}
        seen = bridges["LONDON"].stats.snapshot().get("duplicate", 0)
        report = replay.replay(paris, selection, progress=False)
        assert report.events == 64 and report.per_origin == {"PARIS": 32, "MADRID": 32}
        wait_for(
            lambda: bridges["LONDON"].stats.snapshot().get("duplicate", 0) - seen == 64,
            60,
            "LONDON took the 64 replayed events, each a duplicate",
        )
        # the replay went to LONDON only: the others' queues are empty, nothing was archived
        assert queue_depth("SITE_MADRID") == 0 and queue_depth("SITE_PARIS") == 0
        assert archived_count(paris) == 96
    assert rows(london) == before_rows
    assert inbox_count(london) == before_inbox
    assert sql(db_of(london), "SELECT count(*) FROM bridge_conflicts")[0][0] == conflicts


def test_replay_restores_a_site_whose_queue_lost_events_while_others_write(sites):
    paris, london, madrid = sites["PARIS"], sites["LONDON"], sites["MADRID"]
    since = sql(db_of(paris), "SELECT now() - interval '1 second'")[0][0]
    with running(paris, madrid):
        write_some(paris, 1000, 30)
        write_some(madrid, 2000, 30)
        wait_for(lambda: archived_count(paris) == 2 * 47, 60, "every event archived")
        wait_for(lambda: queue_depth("SITE_LONDON") > 0, 30, "LONDON's queue holds the events")
        # LONDON's queue loses them (as when all three nodes died at once with the messages
        # not yet on disk): only the archive and the origins' echoes had them
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_ADMIN))
        conn.channel().queue_purge("SITE_LONDON")
        conn.close()

        stop = threading.Event()
        written: list[int] = []

        def keep_writing() -> None:
            i = 5000
            while not stop.is_set():
                for cfg in (paris, madrid):
                    sql(
                        db_of(cfg),
                        "INSERT INTO orders (id, customer, amount) VALUES (%s, %s, 1)",
                        i,
                        cfg.site,
                    )
                    written.append(i)
                    i += 1
                time.sleep(0.02)  # paces the writers: not a wait for a condition

        writer = threading.Thread(target=keep_writing)
        with running(london):
            writer.start()
            try:
                report = replay.replay(paris, replay.Selection("LONDON", since=since))
                # the 94 lost events, and what the writers made since, if read already
                assert report.events >= 2 * 47
                wait_for(lambda: len(written) > 40, 30, "writers running during the replay")
            finally:
                stop.set()
                writer.join()
            wait_for(
                lambda: (
                    converged([paris, london, madrid]) and len(rows(london)) == 58 + len(written)
                ),
                90,
                "LONDON restored and caught up with the writes made meanwhile",
            )
        wait_for(lambda: all(outbox_empty(c) for c in (paris, madrid)), 60, "outboxes drained")
    assert_verified(sites)


def test_replay_older_than_the_targets_cleanup_applies_nothing(sites):
    paris, london = sites["PARIS"], sites["LONDON"]
    cfgs = list(sites.values())
    with running(*cfgs):
        sql(db_of(paris), "INSERT INTO orders (id, customer) VALUES (1, 'old'), (2, 'kept')")
        sql(db_of(paris), "DELETE FROM orders WHERE id = 1")
        wait_for(lambda: archived_count(paris) == 3, 60, "archived")
        wait_for(lambda: converged(cfgs) and len(rows(london)) == 1, 60, "convergence")
        wait_for(lambda: all(outbox_empty(c) for c in cfgs), 60, "outboxes drained")
    # Age all of it by three days, at the archive and at LONDON, as if made then; then
    # LONDON's cleanup (1 day) purges its inbox entries and the tombstone of row 1.
    shift = "interval '3 days'"
    sql(
        db_of(paris),
        f"UPDATE bridge_archive SET ts = ts - {shift}, event = jsonb_set(event, '{{timestamp}}', "
        f"to_jsonb(to_char((ts - {shift}) AT TIME ZONE 'UTC', "
        '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')))',
    )
    sql(db_of(london), f"UPDATE bridge_inbox SET applied_at = applied_at - {shift}")
    sql(db_of(london), f"UPDATE bridge_row_version SET ts = ts - {shift}")
    dialect = for_url(london.database_url)
    purged = cleanup.cleanup(london, dialect, older_than_days=1)
    assert purged["inbox entries"] == 3 and purged["tombstones"] == 1
    with dialect.connect(london.database_url) as conn:
        assert cleanup.cleanup_horizon(dialect, conn) is not None

    with running(*cfgs) as bridges:
        report = replay.replay(paris, replay.Selection("LONDON"), progress=False)
        assert report.events == 3
        wait_for(
            lambda: bridges["LONDON"].stats.snapshot().get("superseded", 0) == 3,
            60,
            "the three replayed events skipped as older than LONDON's cleanup",
        )
    # without the horizon the insert of row 1 (its tombstone purged) would be applied again
    assert [r[0] for r in rows(london)] == [2]
    assert inbox_count(london) == 0


def test_replay_is_refused_away_from_the_archive_and_dry_run_counts(sites):
    cfgs = list(sites.values())
    with running(*cfgs):
        write_some(sites["MADRID"], 100, 4)
        wait_for(lambda: archived_count(sites["PARIS"]) == 8, 60, "archived")
    with pytest.raises(ConfigError, match="not the archive site"):
        replay.count(sites["LONDON"], replay.Selection("MADRID"))
    with pytest.raises(ConfigError, match="unknown site"):
        replay.count(sites["PARIS"], replay.Selection("ROME"))
    result = CliRunner().invoke(
        main,
        ["replay", "--to", "london", "--origin", "MADRID", "--since", "1h", "--dry-run"],
        env=env_of(sites["PARIS"]),
    )
    assert result.exit_code == 0, result.output
    assert "MADRID     orders.insert" in result.output
    assert "8 event(s) would go to LONDON" in result.output
    assert queue_depth("SITE_LONDON") == 0  # a dry run sends nothing


def test_only_the_archive_sites_user_may_replay(sites):
    """Another site's broker user may not publish to bridge.replay: relaying events of other
    origins is the archive's right alone (the consumers' own check: tests/unit)."""
    london, madrid = sites["LONDON"], sites["MADRID"]
    forged = dataclasses.replace(madrid, archive_site="MADRID")  # MADRID pretends
    with (
        pytest.raises(BrokerError, match="may not publish to bridge.replay"),
        replay.Sender(forged, "LONDON", "replay") as sender,
    ):
        sender.send(
            [
                events.from_dict(
                    json.loads(
                        '{"id": "6f1c1d5e-8e0a-4c1e-9d55-7b8a3c0e9f10", "timestamp": '
                        '"2026-01-01T00:00:00.000000Z", "origin": "PARIS", "type": '
                        '"orders.insert", "data": {"table": "orders", "op": "insert", '
                        '"key": {"id": 7}, "row": {"id": 7, "customer": "forged"}}}'
                    )
                )
            ]
        )
    assert rows(london) == []
