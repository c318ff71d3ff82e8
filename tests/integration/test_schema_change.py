"""A table changed at one site before the others, in every order of ALTER TABLE, writes and
install-triggers, with three real sites, their bridges running and the real cluster:
no value written after an ALTER is lost. A site whose table lacks a column dead-letters
the events that carry it (saying which column and what to do) and applies them with
`bridge dlq retry` once it has the column; an event that lacks a column the table has
gives it its DEFAULT, insert and update alike. At the end: `bridge verify` is clean and
every written value is everywhere.

Each scenario is a list of steps; after each write the test waits until every other site
has applied it or dead-lettered it, so each step meets the state the previous ones left.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest

from bridge import dlq, install, verify
from bridge.config import Config
from bridge.dialects import for_url
from tests.conftest import converged, db_of, outbox_empty, running, sql, wait_for
from tests.integration.test_dlq import bridge

pytestmark = pytest.mark.integration

ADD = "ALTER TABLE orders ADD COLUMN extra numeric(12, 3) DEFAULT 0.5"
DEFAULT = Decimal("0.500")

# (name, steps, the extra value every site ends with, per id)
# steps: ("alter", SITE) | ("write", SITE, id, extra) | ("reinstall", SITE) | ("drop", SITE)
SCENARIOS: list[tuple[str, list[tuple[Any, ...]], dict[int, Decimal]]] = [
    (
        "altered-and-written-before-the-others-alter",
        [
            ("alter", "PARIS"),
            ("write", "PARIS", 1, "1.25"),
            ("alter", "LONDON"),
            ("alter", "MADRID"),
        ],
        {1: Decimal("1.250")},
    ),
    (
        "written-where-not-altered-reaching-altered-sites",
        [
            ("alter", "PARIS"),
            ("write", "LONDON", 2, None),
            ("alter", "LONDON"),
            ("alter", "MADRID"),
        ],
        {2: DEFAULT},
    ),
    (
        "altered-everywhere-then-written",
        [
            ("alter", "PARIS"),
            ("alter", "LONDON"),
            ("alter", "MADRID"),
            ("write", "MADRID", 3, "3"),
        ],
        {3: Decimal("3.000")},
    ),
    (
        "reinstalled-before-the-write",
        [
            ("alter", "PARIS"),
            ("reinstall", "PARIS"),
            ("write", "PARIS", 4, "4.5"),
            ("alter", "LONDON"),
            ("reinstall", "LONDON"),
            ("alter", "MADRID"),
        ],
        {4: Decimal("4.500")},
    ),
    (
        "reinstalled-between-two-writes",
        [
            ("alter", "PARIS"),
            ("write", "PARIS", 5, "5"),
            ("reinstall", "PARIS"),
            ("write", "PARIS", 5, "5.5"),
            ("alter", "MADRID"),
            ("reinstall", "MADRID"),
            ("alter", "LONDON"),
        ],
        {5: Decimal("5.500")},
    ),
    (
        "a-later-update-from-a-site-without-the-column-wins",
        [
            ("write", "PARIS", 6, None),
            ("alter", "PARIS"),
            ("write", "PARIS", 6, "6"),
            ("write", "LONDON", 6, None),  # later: LONDON's row has no extra, DEFAULT wins
            ("alter", "LONDON"),
            ("alter", "MADRID"),
        ],
        {6: DEFAULT},
    ),
    (
        "altered-while-its-bridge-runs-then-updated-from-a-site-without-it",
        [
            ("write", "PARIS", 7, None),
            ("alter", "MADRID"),  # MADRID's bridge described orders before this
            ("write", "MADRID", 7, "7"),
            ("write", "LONDON", 7, None),  # must set MADRID's extra back to its DEFAULT
            ("alter", "PARIS"),
            ("alter", "LONDON"),
        ],
        {7: DEFAULT},
    ),
    (
        "a-captured-column-dropped-at-one-site-first",
        [
            ("write", "PARIS", 8, "unused"),
            ("drop", "PARIS"),  # the capture function named blob: the event trigger
            ("write", "PARIS", 8, None),
            ("write", "PARIS", 9, None),
            ("drop", "LONDON"),
            ("drop", "MADRID"),
            ("reinstall", "PARIS"),
            ("reinstall", "LONDON"),
            ("reinstall", "MADRID"),
        ],
        {},
    ),
]


class Sites:
    """The three sites, what each one's table has, and the steps."""

    def __init__(self, cfgs: dict[str, Config]) -> None:
        self.cfgs = cfgs
        self.altered: set[str] = set()
        self.dropped: set[str] = set()
        self.writes = 0

    def step(self, action: str, site: str, *args: Any) -> None:
        cfg = self.cfgs[site]
        if action == "alter":
            sql(db_of(cfg), ADD)
            self.altered.add(site)
        elif action == "drop":
            sql(db_of(cfg), "ALTER TABLE orders DROP COLUMN blob")
            self.dropped.add(site)
        elif action == "reinstall":
            dialect = for_url(cfg.database_url)
            with dialect.connect(cfg.database_url) as conn:
                install.install_triggers(
                    dialect, conn, ["orders"], install.ConnectionSink(conn), True
                )
        else:
            self.write(site, *args)

    def write(self, site: str, key: int, extra: str | None) -> None:
        """An upsert of row `key` at `site` (with `extra` where the table has it), as the
        application does it; waits until every other site applied or dead-lettered it."""
        self.writes += 1
        columns = {"id": key, "customer": f"{site}-{self.writes}"}
        if site in self.altered:
            columns["extra"] = extra
        if site not in self.dropped:
            columns["blob"] = b"\x00\xff"
        names = ", ".join(columns)
        updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in columns if n != "id")
        statement = (
            f"INSERT INTO orders ({names}) VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}; "
        )
        with psycopg.connect(self.cfgs[site].database_url) as conn:
            conn.execute(statement, list(columns.values()))
            (event_id,) = conn.execute(
                "SELECT event_id::text FROM bridge_outbox ORDER BY seq DESC LIMIT 1"
            ).fetchone() or (None,)
        assert event_id, f"{site}'s write was not captured"
        for other, cfg in self.cfgs.items():
            if other != site:
                wait_for(lambda c=cfg: handled(c, event_id), 30, f"{other} to take {event_id}")


def handled(cfg: Config, event_id: str) -> bool:
    """The site applied the event (its inbox has it) or dead-lettered it."""
    inbox = "SELECT count(*) FROM bridge_inbox WHERE event_id = %s"
    if sql(db_of(cfg), inbox, event_id)[0][0]:
        return True
    return any(d.id == event_id for d in dlq.list_dead_letters(cfg))


@pytest.mark.parametrize(
    ("steps", "extras"), [(s, e) for _, s, e in SCENARIOS], ids=[n for n, _, _ in SCENARIOS]
)
def test_no_value_written_after_a_schema_change_is_lost(
    sites: dict[str, Config], steps: list[tuple[Any, ...]], extras: dict[int, Decimal]
) -> None:
    cfgs = list(sites.values())
    state = Sites(sites)
    with running(*cfgs):
        for step in steps:
            state.step(*step)
        for cfg in cfgs:
            letters = dlq.list_dead_letters(cfg)
            for letter in letters:
                assert "unknown column(s) ['extra']" in letter.reason
                assert f"site {cfg.site}'s table lacks" in letter.reason
                assert "then run bridge dlq retry" in letter.reason
            if letters:
                out = bridge(cfg, "dlq", "retry", "--all")
                assert out.exit_code == 0, out.output
                assert dlq.list_dead_letters(cfg) == []
        wait_for(
            lambda: converged(cfgs) and all(outbox_empty(c) for c in cfgs),
            60,
            "every site holds the same rows",
        )
    peers = {c.site: c.database_url for c in cfgs[1:]}
    assert verify.verify(cfgs[0], peers)[1] == []
    for cfg in cfgs:
        held = dict(sql(db_of(cfg), "SELECT id, extra FROM orders")) if extras else {}
        assert {k: held[k] for k in extras} == extras, cfg.site
