"""`bridge cleanup` against real PostgreSQL: what it deletes, --dry-run, what it refuses."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bridge import cleanup
from bridge.cli import main
from bridge.dialects import for_url
from bridge.errors import ConfigError
from tests.conftest import DB_PREFIX, create_site_db, env_of, make_config, setup_site, sql

pytestmark = pytest.mark.integration

DB = DB_PREFIX + "cleanup"
TABLES = ("bridge_archive", "bridge_inbox", "bridge_row_version")


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
    assert "6 row(s) older than 90 days would be deleted (dry run" in out.output
    assert counts() == before


def test_cleanup_deletes_only_what_is_older_than_the_retention(site):
    assert cleanup.cleanup(site, for_url(site.database_url), 30, dry_run=True) == {
        "archive entries": 2,
        "inbox entries": 2,
        "tombstones": 2,
    }
    out = bridge(site, "cleanup", "--older-than", "30")
    assert out.exit_code == 0, out.output
    assert "tombstones                2 deleted" in out.output.splitlines()
    # the 10-day-old rows stay, and so does the live row's version (not a tombstone)
    assert counts() == {"bridge_archive": 1, "bridge_inbox": 1, "bridge_row_version": 2}
    assert sql(DB, "SELECT row_key->>'id', deleted FROM bridge_row_version ORDER BY 1") == [
        ("3", True),
        ("4", False),
    ]
    out = bridge(site, "cleanup")  # retention_days, 90: nothing that old is left
    assert out.exit_code == 0, out.output
    assert "0 row(s) older than 90 days deleted" in out.output


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
