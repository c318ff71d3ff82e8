"""`bridge repair` through the real cluster: rows changed behind bridge's back found by key
(`bridge verify`), brought back to their winning version through the sites' queues by the
normal apply path, and verify clean again."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
from click.testing import CliRunner

from bridge import repair
from bridge.cli import main
from bridge.config import Config
from tests.conftest import (
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


def behind_bridges_back(cfg: Config, query: str, *params: object) -> None:
    """A change the capture trigger does not see (the transaction marked as bridge's own)."""
    with psycopg.connect(cfg.database_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL bridge.applying = 'on'")
        conn.execute(query, params)


def archive_site(sites: dict[str, Config]) -> Config:
    peers = {c.site: c.database_url for k, c in sites.items() if k != "PARIS"}
    return dataclasses.replace(sites["PARIS"], peers=peers)


def synced(sites: dict[str, Config]) -> None:
    cfgs = list(sites.values())
    for n, cfg in enumerate(cfgs):
        sql(
            db_of(cfg),
            "INSERT INTO orders (id, customer, amount, note) "
            "SELECT g, %s, g, 'n' || g FROM generate_series(%s::int, %s::int) AS g",
            cfg.site,
            100 * n + 1,
            100 * n + 100,
        )
    wait_for(lambda: converged(cfgs) and len(rows(cfgs[0])) == 300, 90, "convergence")
    # LONDON edits rows PARIS made: their versions are LONDON's
    sql(db_of(sites["LONDON"]), "UPDATE orders SET note = 'edited' WHERE id BETWEEN 1 AND 20")
    wait_for(
        lambda: (
            converged(cfgs)
            and sql(db_of(cfgs[0]), "SELECT count(*) FROM orders WHERE note = 'edited'")[0][0] == 20
        ),
        90,
        "the edits everywhere",
    )
    wait_for(lambda: all(outbox_empty(c) for c in cfgs), 60, "outboxes drained")
    archived = 300 + 20
    wait_for(
        lambda: sql(db_of(sites["PARIS"]), "SELECT count(*) FROM bridge_archive")[0][0] == archived,
        60,
        "archived",
    )


def test_rows_changed_behind_bridges_back_are_repaired_to_their_winning_version(sites):
    paris, london, madrid = sites["PARIS"], sites["LONDON"], sites["MADRID"]
    with running(*sites.values()):
        synced(sites)
        expected = rows(paris)
        behind_bridges_back(london, "UPDATE orders SET note = 'tampered' WHERE id = 5")
        behind_bridges_back(london, "DELETE FROM orders WHERE id = 150")
        behind_bridges_back(london, "INSERT INTO orders (id, customer) VALUES (9999, 'ghost')")
        behind_bridges_back(madrid, "UPDATE orders SET amount = -1 WHERE id = 250")

        report = repair.run(archive_site(sites), archive_site(sites).peers, progress=False)
        found = {
            (str(d.key["id"]), site)
            for d in report.before.differences["orders"]
            for site, state in d.states().items()
            if state != "same"
        }
        assert found == {("5", "LONDON"), ("150", "LONDON"), ("9999", "LONDON"), ("250", "MADRID")}
        by_site = {(f.site, f.event.key["id"]): f for f in report.plan.fixes}
        assert set(by_site) == {("LONDON", 5), ("LONDON", 150), ("LONDON", 9999), ("MADRID", 250)}
        assert by_site["LONDON", 5].source == "archive"  # the event of the row's version
        assert by_site["LONDON", 9999].event.op == "delete"  # no site has a version: majority
        assert report.unapplied == []
        assert report.after is not None and report.after.ok
    assert rows(london) == expected and rows(madrid) == expected and rows(paris) == expected


def test_without_the_archived_event_the_row_comes_from_the_sites_holding_its_version(sites):
    paris, london, madrid = sites["PARIS"], sites["LONDON"], sites["MADRID"]
    with running(*sites.values()):
        synced(sites)
        expected = rows(paris)
        # the archive no longer has row 7's events (purged), and MADRID's row 7 was changed
        sql(db_of(paris), "DELETE FROM bridge_archive WHERE event->'data'->'key'->>'id' = '7'")
        behind_bridges_back(madrid, "UPDATE orders SET customer = 'wrong' WHERE id = 7")
        report = repair.run(archive_site(sites), archive_site(sites).peers, progress=False)
        [fix] = report.plan.fixes
        assert (fix.site, fix.event.key, fix.source) == ("MADRID", {"id": 7}, "PARIS")
        assert report.after is not None and report.after.ok
    assert rows(madrid) == expected and rows(london) == expected


def test_repair_of_one_site_leaves_the_others_and_dry_run_sends_nothing(sites):
    paris, london, madrid = sites["PARIS"], sites["LONDON"], sites["MADRID"]
    env = env_of(paris, peers=f"LONDON={london.database_url},MADRID={madrid.database_url}")
    with running(*sites.values()):
        synced(sites)
        behind_bridges_back(london, "UPDATE orders SET note = 'x' WHERE id = 3")
        behind_bridges_back(madrid, "UPDATE orders SET note = 'y' WHERE id = 4")

        dry = CliRunner().invoke(main, ["repair", "--dry-run"], env=env)
        assert dry.exit_code == 0, dry.output
        assert "would send 2 repair event(s): 1 to LONDON, 1 to MADRID" in dry.output
        assert sql(db_of(london), "SELECT note FROM orders WHERE id = 3")[0][0] == "x"

        only = CliRunner().invoke(main, ["repair", "--site", "madrid"], env=env)
        assert only.exit_code == 1  # LONDON still differs
        assert "sent 1 repair event(s): 1 to MADRID" in only.output
        assert "rows still differ in orders" in only.output
        assert sql(db_of(madrid), "SELECT note FROM orders WHERE id = 4")[0][0] == "edited"
        assert sql(db_of(london), "SELECT note FROM orders WHERE id = 3")[0][0] == "x"

        done = CliRunner().invoke(main, ["repair"], env=env)
        assert done.exit_code == 0, done.output
        assert "verify: every site now holds the same rows" in done.output
    assert sql(db_of(london), "SELECT note FROM orders WHERE id = 3")[0][0] == "edited"


def test_repair_is_refused_away_from_the_archive_or_without_every_sites_database(sites):
    london = sites["LONDON"]
    result = CliRunner().invoke(main, ["repair"], env=env_of(london))
    assert result.exit_code == 1 and "not the archive site" in result.output
    result = CliRunner().invoke(main, ["repair"], env=env_of(sites["PARIS"]))
    assert result.exit_code == 1
    assert "no database URL for site(s) LONDON, MADRID" in result.output
