"""A site whose database clock really runs an hour off (libfaketime preloaded into its own
PostgreSQL server, tests/faults/skewed_pg.py) beside two sites on the main PostgreSQL.

Every change is a plain SQL write captured by the real triggers and carried by real
bridges through the real cluster; what docs/conflicts.md ("Clock skew") says is checked
on the stamps, winners and conflicts that come out, and `bridge verify` at the end.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from bridge import verify
from bridge.config import Config
from tests.conftest import (
    DB_PREFIX,
    ORDERS_DDL,
    SITES,
    create_site_db,
    make_config,
    pg_url,
    running,
    setup_site,
    wait_for,
)
from tests.faults.skewed_pg import SkewedServer, skewed_postgres

pytestmark = pytest.mark.faults

PARIS, LONDON, MADRID = SITES
HOUR = dt.timedelta(hours=1)
MICROSECOND = dt.timedelta(microseconds=1)
LOSS = "older than the local version"


# --- sites -------------------------------------------------------------------------------


def q(cfg: Config, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """A query at a site, on whichever server its database lives."""
    with psycopg.connect(cfg.database_url, autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def _drop_main_db(db: str) -> None:
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{db}"')


def _three_sites(tag: str, offset: str, expected: dt.timedelta) -> Iterator[dict[str, Config]]:
    """PARIS and MADRID on the main PostgreSQL, LONDON on a server whose clock runs
    `offset`; bridge initialised and capturing `orders` at each."""
    with skewed_postgres(offset, expected) as server:
        print(f"\n[skew] LONDON's server: port {server.port}, pid {server.pid}, {_clock(server)}")
        main_dbs = {site: f"{DB_PREFIX}skew_{tag}_{site.lower()}" for site in (PARIS, MADRID)}
        cfgs: dict[str, Config] = {}
        try:
            for site, db in main_dbs.items():
                create_site_db(db)
                cfgs[site] = make_config(site, db)
            london_db = f"{DB_PREFIX}skew_{tag}_london"  # removed with the server's data directory
            cfgs[LONDON] = make_config(
                LONDON, london_db, database_url=server.create_db(london_db, ORDERS_DDL)
            )
            for cfg in cfgs.values():
                setup_site(cfg)
            yield {site: cfgs[site] for site in SITES}
        finally:
            for db in main_dbs.values():
                _drop_main_db(db)


def _clock(server: SkewedServer) -> str:
    return f"now() runs {_fmt_delta(server.offset)} from real time"


@pytest.fixture
def ahead(fresh_topology: Any) -> Iterator[dict[str, Config]]:
    """LONDON's database clock runs one hour ahead."""
    yield from _three_sites("ahead", "+1h", HOUR)


@pytest.fixture
def behind(fresh_topology: Any) -> Iterator[dict[str, Config]]:
    """LONDON's database clock runs one hour behind."""
    yield from _three_sites("behind", "-1h", -HOUR)


# --- what the sites hold -----------------------------------------------------------------


def note(cfg: Config, key: int) -> str | None:
    got = q(cfg, "SELECT note FROM orders WHERE id = %s", key)
    return got[0][0] if got else None


def version(cfg: Config, key: int) -> tuple[dt.datetime, str] | None:
    got = q(
        cfg,
        "SELECT ts, origin FROM bridge_row_version "
        "WHERE table_name = 'orders' AND row_key = jsonb_build_object('id', %s::bigint)",
        key,
    )
    return (got[0][0], got[0][1]) if got else None


def pending_stamp(cfg: Config, key: int) -> dt.datetime:
    """The capture stamp of the newest change of the row still in the site's outbox."""
    got = q(
        cfg,
        "SELECT created_at FROM bridge_outbox "
        "WHERE payload -> 'key' = jsonb_build_object('id', %s::bigint) ORDER BY seq DESC LIMIT 1",
        key,
    )
    assert got, f"no captured change of row {key} in {cfg.site}'s outbox"
    return got[0][0]


def clock_offset(cfg: Config) -> dt.timedelta:
    db_now = q(cfg, "SELECT clock_timestamp()")[0][0]
    return db_now - dt.datetime.now(dt.UTC)


def write(cfg: Config, key: int, value: str) -> dt.datetime:
    """A legacy application's UPDATE at the site; returns the site's clock when it ran."""
    got = q(
        cfg, "UPDATE orders SET note = %s WHERE id = %s RETURNING clock_timestamp()", value, key
    )
    assert got, f"row {key} missing at {cfg.site}"
    return got[0][0]


def conflicts(cfgs: dict[str, Config]) -> list[dict[str, Any]]:
    found = []
    for site, cfg in cfgs.items():
        for row in q(
            cfg,
            "SELECT incoming_origin, incoming_ts, incoming, local_origin, local_ts, reason "
            "FROM bridge_conflicts ORDER BY id",
        ):
            incoming = row[2] if isinstance(row[2], dict) else json.loads(row[2])
            found.append(
                {
                    "at": site,
                    "incoming_origin": row[0],
                    "incoming_ts": row[1],
                    "incoming_note": (incoming.get("data", {}).get("row") or {}).get("note"),
                    "local_origin": row[3],
                    "local_ts": row[4],
                    "reason": row[5],
                }
            )
    return found


def losses(cfgs: dict[str, Config]) -> list[dict[str, Any]]:
    """Remote changes refused by last-writer-wins (not the logged overwrites)."""
    return [c for c in conflicts(cfgs) if LOSS in c["reason"]]


def settled(cfgs: dict[str, Config], events: int) -> bool:
    """All `events` were archived at PARIS, every site received every other site's
    events (its inbox), and every site's own came back (empty outbox)."""
    archive = q(cfgs[PARIS], "SELECT event_id::text, origin FROM bridge_archive")
    if len(archive) < events:
        return False
    for site, cfg in cfgs.items():
        if q(cfg, "SELECT count(*) FROM bridge_outbox")[0][0]:
            return False
        inbox = {r[0] for r in q(cfg, "SELECT event_id::text FROM bridge_inbox")}
        if any(origin != site and eid not in inbox for eid, origin in archive):
            return False
    return True


def settle(cfgs: dict[str, Config], events: int, what: str) -> None:
    wait_for(lambda: settled(cfgs, events), 90, what, 0.2)
    archived = q(cfgs[PARIS], "SELECT count(*) FROM bridge_archive")[0][0]
    assert archived == events, f"expected {events} events in the archive, found {archived}"


def assert_same_everywhere(cfgs: dict[str, Config], key: int, expected: str) -> None:
    notes = {site: note(cfg, key) for site, cfg in cfgs.items()}
    assert notes == {site: expected for site in cfgs}, notes


def assert_verified(cfgs: dict[str, Config]) -> None:
    peers = {site: cfg.database_url for site, cfg in cfgs.items() if site != PARIS}
    sums, differing = verify.verify(cfgs[PARIS], peers)
    print(f"[skew] bridge verify: differing tables {differing}; sums {sums}")
    assert differing == [], sums


def _fmt_version(ver: tuple[dt.datetime, str] | None) -> str:
    return f"{ver[0].isoformat()} {ver[1]}" if ver else "-"


def _fmt_delta(delta: dt.timedelta) -> str:
    seconds = delta.total_seconds()
    return f"{'+' if seconds >= 0 else '-'}{abs(seconds):.3f}s"


def show(title: str, cfgs: dict[str, Config], key: int) -> None:
    """Print each site's clock, row and version, then every conflict logged so far."""
    print(f"[skew] -- {title}")
    for site, cfg in cfgs.items():
        shown = _fmt_version(version(cfg, key))
        print(
            f"[skew]   {site:7} clock {_fmt_delta(clock_offset(cfg)):>12}  "
            f"note={note(cfg, key)!r:40}  version={shown}"
        )
    for c in conflicts(cfgs):
        print(
            f"[skew]   conflict at {c['at']}: incoming {c['incoming_origin']} "
            f"{c['incoming_ts'].isoformat()} note={c['incoming_note']!r} vs local "
            f"{c['local_origin']} {c['local_ts'].isoformat() if c['local_ts'] else '-'}: "
            f"{c['reason']}"
        )


def insert_everywhere(cfgs: dict[str, Config], key: int) -> None:
    """PARIS inserts the row; it reaches every site (1 event)."""
    with running(*cfgs.values()):
        q(cfgs[PARIS], "INSERT INTO orders (id, customer, note) VALUES (%s, 'c', 'v0')", key)
        settle(cfgs, 1, "the initial row everywhere")
    assert_same_everywhere(cfgs, key, "v0")


# --- the tests -----------------------------------------------------------------------------


def test_site_ahead_wins_concurrent_writes_and_loses_to_a_change_made_after_it(
    ahead: dict[str, Config],
) -> None:
    cfgs, key = ahead, 1
    insert_everywhere(cfgs, key)

    # (1) truly concurrent: no bridge runs, so neither site can see the other's change.
    # LONDON (clock +1h) writes first, PARIS writes after it in real time.
    london_clock = write(cfgs[LONDON], key, "london, first in real time")
    paris_clock = write(cfgs[PARIS], key, "paris, later in real time")
    london_ts, paris_ts = pending_stamp(cfgs[LONDON], key), pending_stamp(cfgs[PARIS], key)
    print(
        f"[skew] concurrent writes: LONDON's clock {london_clock.isoformat()} stamped "
        f"{london_ts.isoformat()}; PARIS's clock {paris_clock.isoformat()} stamped "
        f"{paris_ts.isoformat()}; LONDON's stamp - PARIS's = {_fmt_delta(london_ts - paris_ts)}"
    )
    # the earlier write carries the later stamp: that is the skew, really in the clocks
    assert london_ts - paris_ts > HOUR / 2
    with running(*cfgs.values()):
        settle(cfgs, 3, "both concurrent writes delivered everywhere")
    show("after the concurrent writes", cfgs, key)
    assert_same_everywhere(cfgs, key, "london, first in real time")
    for cfg in cfgs.values():
        assert version(cfg, key) == (london_ts, LONDON)
    lost = losses(cfgs)
    # PARIS's write lost at LONDON for sure (its own change is known there); at MADRID it
    # lost too if LONDON's came first. LONDON's write lost nowhere.
    assert {c["incoming_origin"] for c in lost} == {PARIS}, lost
    assert LONDON in {c["at"] for c in lost}
    assert all(c["incoming_note"] == "paris, later in real time" for c in lost)
    assert all(c["local_origin"] == LONDON and c["local_ts"] == london_ts for c in lost)
    assert_verified(cfgs)
    before = conflicts(cfgs)

    # (2) MADRID (normal clock, an hour behind LONDON's) changes the row after it applied
    # LONDON's change: its change wins everywhere, stamped just after LONDON's version.
    with running(*cfgs.values()):
        madrid_clock = write(cfgs[MADRID], key, "madrid, after seeing london")
        settle(cfgs, 4, "MADRID's later change delivered everywhere")
    show("after MADRID's later change", cfgs, key)
    madrid_version = version(cfgs[MADRID], key)
    print(
        f"[skew] MADRID's clock {madrid_clock.isoformat()} < LONDON's version "
        f"{london_ts.isoformat()}: MADRID's change stamped {_fmt_version(madrid_version)}"
    )
    assert madrid_clock < london_ts
    assert madrid_version == (london_ts + MICROSECOND, MADRID)
    assert_same_everywhere(cfgs, key, "madrid, after seeing london")
    for cfg in cfgs.values():
        assert version(cfg, key) == madrid_version
    assert conflicts(cfgs) == before, "MADRID's later change must conflict nowhere"
    assert_verified(cfgs)


def test_site_behind_wins_with_a_change_made_after_it_and_loses_concurrent_writes(
    behind: dict[str, Config],
) -> None:
    cfgs, key = behind, 2
    insert_everywhere(cfgs, key)

    # (3) LONDON (clock -1h) changes the row after it applied PARIS's change: it wins
    # everywhere although its clock is an hour behind PARIS's stamp.
    with running(*cfgs.values()):
        write(cfgs[PARIS], key, "paris")
        wait_for(lambda: note(cfgs[LONDON], key) == "paris", 60, "PARIS's change at LONDON")
        paris_ts = version(cfgs[LONDON], key)
        london_clock = write(cfgs[LONDON], key, "london, after seeing paris")
        settle(cfgs, 3, "LONDON's later change delivered everywhere")
    show("after LONDON's later change", cfgs, key)
    assert paris_ts is not None and paris_ts[1] == PARIS
    london_version = version(cfgs[LONDON], key)
    print(
        f"[skew] LONDON's clock {london_clock.isoformat()} < PARIS's version "
        f"{paris_ts[0].isoformat()}: LONDON's change stamped {_fmt_version(london_version)}"
    )
    assert london_clock < paris_ts[0]
    assert london_version == (paris_ts[0] + MICROSECOND, LONDON)
    assert_same_everywhere(cfgs, key, "london, after seeing paris")
    for cfg in cfgs.values():
        assert version(cfg, key) == london_version
    assert conflicts(cfgs) == []
    assert_verified(cfgs)

    # The other side of the same skew: truly concurrent writes (no bridge runs), PARIS
    # first in real time, LONDON later; PARIS's stamp is the greater, so PARIS wins.
    paris_clock = write(cfgs[PARIS], key, "paris, first in real time")
    london_clock = write(cfgs[LONDON], key, "london, later in real time")
    paris_new, london_new = pending_stamp(cfgs[PARIS], key), pending_stamp(cfgs[LONDON], key)
    print(
        f"[skew] concurrent writes: PARIS's clock {paris_clock.isoformat()} stamped "
        f"{paris_new.isoformat()}; LONDON's clock {london_clock.isoformat()} stamped "
        f"{london_new.isoformat()}"
    )
    assert london_new < paris_new
    with running(*cfgs.values()):
        settle(cfgs, 5, "both concurrent writes delivered everywhere")
    show("after the concurrent writes", cfgs, key)
    assert_same_everywhere(cfgs, key, "paris, first in real time")
    lost = losses(cfgs)
    assert {c["incoming_origin"] for c in lost} == {LONDON}, lost
    assert PARIS in {c["at"] for c in lost}
    assert all(c["incoming_note"] == "london, later in real time" for c in lost)
    assert_verified(cfgs)


@pytest.mark.parametrize(
    ("skew", "offline"),
    [("ahead", True), ("behind", True), ("behind", False)],
    ids=["ahead-bridge-stopped", "behind-bridge-stopped", "behind-one-transaction"],
)
def test_two_changes_after_a_remote_change_from_a_clock_ahead_keep_their_order(
    skew: str, offline: bool, request: pytest.FixtureRequest
) -> None:
    """A site applies a change stamped ahead of its own clock (LONDON +1h seen at MADRID;
    PARIS seen at LONDON -1h), then changes the row twice before its first change has come
    back: in two transactions while the bridges are stopped (as when the link is down), or
    in one transaction while they run. The second change must win everywhere."""
    cfgs: dict[str, Config] = request.getfixturevalue(skew)
    key = 3
    source, writer = (LONDON, MADRID) if skew == "ahead" else (PARIS, LONDON)
    values = (f"{writer.lower()}, second", f"{writer.lower()}, third")
    insert_everywhere(cfgs, key)
    with running(*cfgs.values()):
        write(cfgs[source], key, f"{source.lower()}, first")
        settle(cfgs, 2, f"{source}'s change everywhere")
        if not offline:
            with psycopg.connect(cfgs[writer].database_url) as conn:  # one transaction
                for value in values:
                    conn.execute("UPDATE orders SET note = %s WHERE id = %s", (value, key))
                stamps = [
                    r[0]
                    for r in conn.execute(
                        "SELECT created_at FROM bridge_outbox ORDER BY seq"
                    ).fetchall()
                ]
            settle(cfgs, 4, f"{writer}'s two changes delivered everywhere")
    if offline:
        stamps = []
        for value in values:
            write(cfgs[writer], key, value)
            stamps.append(pending_stamp(cfgs[writer], key))
        with running(*cfgs.values()):
            settle(cfgs, 4, f"{writer}'s two changes delivered everywhere")
    print(f"[skew] {writer}'s two changes stamped {[t.isoformat() for t in stamps]}")
    show(f"after {writer}'s two changes", cfgs, key)
    assert_verified(cfgs)
    assert_same_everywhere(cfgs, key, values[-1])
    assert losses(cfgs) == []
    assert stamps[0] < stamps[1]
