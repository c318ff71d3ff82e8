"""Primary keys other than one integer, through the real broker with bridges running:
composite and text keys, and keys that change: two rows exchanging keys in one statement,
every row's key shifted by one (which needs a DEFERRABLE primary key: without one,
PostgreSQL refuses the statement), and the same done in several statements without it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from bridge import verify
from bridge.apply import CONFLICT
from bridge.config import Config
from bridge.dialects import for_url
from bridge.dispatcher import message
from bridge.event import decode
from tests.conftest import (
    DB_PREFIX,
    SiteMaker,
    create_site_db,
    db_of,
    make_config,
    outbox_empty,
    pg_url,
    running,
    setup_site,
    sql,
    wait_for,
)
from tests.racing import ObservedApplier, apply_while_writing

pytestmark = pytest.mark.integration

KEYS = """
CREATE TABLE lines (
    order_id bigint,
    line     text,
    qty      int NOT NULL,
    note     text,
    PRIMARY KEY (order_id, line)
);
CREATE TABLE codes (code text PRIMARY KEY, label text);
CREATE TABLE ranks (pos int PRIMARY KEY DEFERRABLE, name text NOT NULL);
CREATE TABLE slots (pos int PRIMARY KEY, name text NOT NULL);
"""
TABLES = {"lines": "lww", "codes": "lww", "ranks": "lww", "slots": "lww"}
# text keys that quoting, JSON, case or length could confuse
CODES = ["ab", "Ab", "a b", "o'clock", 'say "hi"', "back\\slash", "ünï 😀", "x" * 2000, ""]


def table(cfg: Config, name: str) -> list[tuple[Any, ...]]:
    return sql(db_of(cfg), f"SELECT * FROM {name} ORDER BY 1, 2")


def settled(sites: dict[str, Config], expected: dict[str, list[tuple[Any, ...]]]) -> None:
    """Every site holds `expected` (table -> rows), the outboxes drained; then verify."""
    cfgs = list(sites.values())

    def done() -> bool:
        return all(
            outbox_empty(c) and all(table(c, t) == rows for t, rows in expected.items())
            for c in cfgs
        )

    wait_for(done, 60, f"every site holding {sorted(expected)}, the outboxes drained")
    peers = {c.site: c.database_url for c in cfgs if c.site != "PARIS"}
    sums, differing = verify.verify(sites["PARIS"], peers)
    assert differing == [], sums
    compared = verify.compare(sites["PARIS"], peers, chunk_rows=2)  # text and composite keys
    assert compared.ok, compared.to_json()
    for cfg in cfgs:
        assert sql(db_of(cfg), "SELECT reason FROM bridge_conflicts") == [], cfg.site


def test_composite_and_text_keys(make_sites: SiteMaker) -> None:
    sites = make_sites(KEYS, tables=TABLES)
    paris, london, madrid = (db_of(sites[s]) for s in ("PARIS", "LONDON", "MADRID"))
    with running(*sites.values()):
        sql(
            paris,
            "INSERT INTO lines VALUES (1, 'a', 1, NULL), (1, 'b', 2, NULL), (2, 'a', 3, NULL)",
        )
        for n, code in enumerate(CODES):
            sql([london, madrid][n % 2], "INSERT INTO codes VALUES (%s, %s)", code, f"#{n}")
        settled(
            sites,
            {
                "lines": [(1, "a", 1, None), (1, "b", 2, None), (2, "a", 3, None)],
                "codes": sorted((c, f"#{n}") for n, c in enumerate(CODES)),
            },
        )
        # a change of one part of a composite key; an update at another site; deletes
        sql(
            london, "UPDATE lines SET line = 'b2', note = 'moved' WHERE order_id = 1 AND line = 'b'"
        )
        sql(madrid, "UPDATE lines SET qty = 30 WHERE (order_id, line) = (2, 'a')")
        sql(paris, "UPDATE codes SET label = 'upper' WHERE code = 'Ab'")
        sql(madrid, "DELETE FROM codes WHERE code IN ('a b', '')")
        sql(london, "UPDATE codes SET code = 'o''clock!' WHERE code = 'o''clock'")
        codes = {c: f"#{n}" for n, c in enumerate(CODES) if c not in ("a b", "")}
        codes["Ab"] = "upper"
        codes["o'clock!"] = codes.pop("o'clock")
        settled(
            sites,
            {
                "lines": [(1, "a", 1, None), (1, "b2", 2, "moved"), (2, "a", 30, None)],
                "codes": sorted(codes.items()),
            },
        )
    versions = sql(
        madrid, "SELECT row_key, deleted FROM bridge_row_version WHERE table_name = 'lines'"
    )
    assert ({"line": "b", "order_id": 1}, True) in versions  # the old key's tombstone
    assert ({"line": "b2", "order_id": 1}, False) in versions


def test_keys_swapped_and_shifted(make_sites: SiteMaker) -> None:
    sites = make_sites(KEYS, tables=TABLES)
    paris, london, madrid = (db_of(sites[s]) for s in ("PARIS", "LONDON", "MADRID"))
    ranks = {n: f"r{n}" for n in range(1, 51)}
    slots = {n: f"s{n}" for n in range(1, 51)}

    def expect() -> dict[str, list[tuple[Any, ...]]]:
        return {"ranks": sorted(ranks.items()), "slots": sorted(slots.items())}

    with running(*sites.values()):
        sql(paris, "INSERT INTO ranks SELECT n, 'r' || n FROM generate_series(1, 50) n")
        sql(madrid, "INSERT INTO slots SELECT n, 's' || n FROM generate_series(1, 50) n")
        settled(sites, expect())

        # two rows exchange their keys in one statement (DEFERRABLE key)
        sql(paris, "UPDATE ranks SET pos = 3 - pos WHERE pos IN (1, 2)")
        ranks[1], ranks[2] = ranks[2], ranks[1]
        # every key from 10 up shifted by one, in one statement
        sql(london, "UPDATE ranks SET pos = pos + 1 WHERE pos >= 10")
        ranks = {(n + 1 if n >= 10 else n): name for n, name in ranks.items()}
        settled(sites, expect())
        # and back down, at the third site: 10 is free again
        sql(madrid, "UPDATE ranks SET pos = pos - 1 WHERE pos > 10")
        ranks = {(n - 1 if n > 10 else n): name for n, name in ranks.items()}

        # the same without a DEFERRABLE key: several statements of one transaction
        sql(
            london,
            "BEGIN; UPDATE slots SET pos = 0 WHERE pos = 1; "
            "UPDATE slots SET pos = 1 WHERE pos = 2; UPDATE slots SET pos = 2 WHERE pos = 0; "
            "COMMIT",
        )
        slots[1], slots[2] = slots[2], slots[1]
        sql(
            paris,
            "BEGIN; UPDATE slots SET pos = -pos WHERE pos >= 10; "
            "UPDATE slots SET pos = 1 - pos WHERE pos < 0; COMMIT",
        )
        slots = {(n + 1 if n >= 10 else n): name for n, name in slots.items()}
        settled(sites, expect())
    tombstones = sql(london, "SELECT table_name, row_key FROM bridge_row_version WHERE deleted")
    # the keys left behind: 51 of ranks (shifted up, then down); of slots, the temporary key
    # of the swap, 10, and the negative keys of the shift
    left = [("ranks", 51), ("slots", 0), ("slots", 10)] + [("slots", -n) for n in range(10, 51)]
    assert sorted((t, k["pos"]) for t, k in tombstones) == sorted(left)


def test_an_insert_into_a_deferrable_key_that_a_local_insert_races_is_decided_again() -> None:
    """MADRID's application inserts key 5 and has not committed when the applier inserts
    LONDON's (older) row of key 5, which it found absent. A DEFERRABLE key is checked at
    the end of the applier's statement, after waiting for MADRID's transaction: once it
    commits, the insert fails, and the change is decided again against MADRID's row (a
    conflict LONDON's older change loses), not logged as a row that cannot be written.
    The batch runs with a savepoint per event (its first event is refused at MADRID), where
    nothing else would run the change again."""
    configs = {}
    for name in ("LONDON", "MADRID"):
        db = f"{DB_PREFIX}deferrable_race_{name.lower()}"
        create_site_db(db, KEYS)
        configs[name] = make_config(name, db, tables=TABLES)
        setup_site(configs[name])
    london, madrid = configs["LONDON"], configs["MADRID"]
    sql(db_of(madrid), "ALTER TABLE ranks ADD CHECK (name <> 'refused here')")
    sql(db_of(london), "INSERT INTO ranks VALUES (6, 'refused here')")
    sql(db_of(london), "INSERT INTO ranks VALUES (5, 'london')")
    dialect = for_url(london.database_url)
    with dialect.connect(london.database_url) as conn:
        rows = conn.execute(
            dialect.render("outbox_fetch"), {"after": 0, "gaps": [], "limit": 10}
        ).fetchall()
    events = [decode(message(row, "london")[0]) for row in rows]
    applier = ObservedApplier(madrid, for_url(madrid.database_url))
    try:
        with (
            psycopg.connect(pg_url("postgres"), autocommit=True) as monitor,
            psycopg.connect(madrid.database_url) as writer,
        ):
            writer.execute("INSERT INTO ranks VALUES (5, 'madrid')")
            race = apply_while_writing(monitor, writer, applier, events)
    finally:
        applier.close()
    assert race.waited, "the applier did not wait for MADRID's insert"
    assert [(o.status, o.reason.split(":")[0].split(" (")[0]) for o in race.outcomes] == [
        (CONFLICT, "cannot apply"),
        (CONFLICT, "older than the local version"),
    ]
    assert table(madrid, "ranks") == [(5, "madrid")]
