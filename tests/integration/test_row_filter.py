"""Row filters (`install-triggers --where`) on real servers, through the real cluster: a
federation per layout of tests/federation.py (PARIS on PostgreSQL; LONDON and MADRID on the
dialect under test), every site capturing `orders` where status <> 'draft'.

Changes are made at LONDON (the dialect's capture) and at PARIS (PostgreSQL's), each in its
own range of keys. "Not sent" is told by a sentinel: a row that passes, written last at the
origin; once it has arrived everywhere, so has every change the origin sent before it (one
queue per site, consumed in order), and the outboxes are empty.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from click.testing import CliRunner

from bridge import config as config_mod
from bridge import install
from bridge.cli import main
from bridge.dialects import for_url
from tests.conftest import amqp_url_for, running, wait_for
from tests.federation import app_sql, count, exact_rows, make_federation

pytestmark = pytest.mark.integration

WHERE = "status <> 'draft'"
ORDERS = {
    "postgresql": """
CREATE TABLE orders (
    id       bigint PRIMARY KEY,
    status   text,
    customer text NOT NULL,
    amount   numeric(14, 4)
)
""",
    "mariadb": """
CREATE TABLE orders (
    id       BIGINT PRIMARY KEY,
    status   VARCHAR(20),
    customer TEXT NOT NULL,
    amount   DECIMAL(14, 4)
) CHARSET = utf8mb4
""",
}


def install_filter(cfg: config_mod.Config, where: str | None) -> list[str]:
    """install-triggers at a site (`where` as --where gives it); the statements it ran."""
    d = for_url(cfg.database_url)
    ran: list[str] = []

    class Recorder:
        def __init__(self, conn: Any) -> None:
            self.inner = install.ConnectionSink(conn)

        def execute(self, statement: str) -> None:
            ran.append(statement)
            self.inner.execute(statement)

    with d.connect(cfg.database_url) as conn:
        install.install_triggers(d, conn, ["orders"], Recorder(conn), True, where=where)
    return ran


def installed(cfg: config_mod.Config) -> str | None:
    d = for_url(cfg.database_url)
    with d.connect(cfg.database_url) as conn:
        return install.installed_filter(d, conn, "orders")


@pytest.fixture(params=["postgresql", "mariadb"])
def fed(request: pytest.FixtureRequest) -> dict[str, config_mod.Config]:
    dialect = str(request.param)
    name = f"rf_{request.node.originalname[5:14]}_{dialect[:5]}"
    configs = make_federation(name, dialect, ddl=ORDERS)
    for cfg in configs.values():
        install_filter(cfg, WHERE)
    return configs


def insert(cfg: config_mod.Config, key: int, status: str | None) -> None:
    app_sql(
        cfg,
        "INSERT INTO orders (id, status, customer, amount) VALUES (%s, %s, %s, %s)",
        key,
        status,
        cfg.site,
        "1.5000",
    )


def ids(cfg: config_mod.Config, low: int, high: int) -> dict[int, str | None]:
    """The rows of keys in [low, high) at a site: key -> status."""
    return {int(r[0]): r[1] for r in exact_rows(cfg) if low <= int(r[0]) < high}


def test_only_the_rows_that_pass_are_synced(
    fed: dict[str, config_mod.Config], fresh_topology: Any
) -> None:
    cfgs = list(fed.values())
    origins = {"LONDON": 100, "PARIS": 200}
    for b in origins.values():
        for cfg in cfgs:  # a draft row of that key at every site, written there (not sent)
            insert(cfg, b + 6, "draft")
    with running(*cfgs):
        for site, b in origins.items():
            cfg = fed[site]
            others = [c for c in cfgs if c is not cfg]
            insert(cfg, b + 1, "open")  # passes: sent
            insert(cfg, b + 2, "draft")  # does not pass: not sent
            insert(cfg, b + 3, None)  # NULL condition: does not pass
            insert(cfg, b + 4, "draft")
            app_sql(cfg, "UPDATE orders SET status = 'open' WHERE id = %s", b + 4)  # enters
            insert(cfg, b + 5, "open")
            insert(cfg, b + 7, "open")
            wait_for(
                lambda b=b, others=others: all(
                    b + 5 in ids(c, b, b + 10) and b + 7 in ids(c, b, b + 10) for c in others
                ),
                60,
                f"{site}'s rows {b + 5} and {b + 7} at the other sites",
            )
            # leaves the filter: deleted at the other sites, kept here
            app_sql(cfg, "UPDATE orders SET status = 'draft' WHERE id = %s", b + 5)
            wait_for(
                lambda b=b, others=others: all(b + 5 not in ids(c, b, b + 10) for c in others),
                60,
                f"{site}'s row {b + 5}, now a draft, deleted at the other sites",
            )
            # passes again: sent again, over the delete it was before
            app_sql(cfg, "UPDATE orders SET status = 'paid' WHERE id = %s", b + 5)
            # a key change into the filtered-out set: the old key deleted, the new not sent
            app_sql(cfg, "UPDATE orders SET id = %s, status = 'draft' WHERE id = %s", b + 8, b + 7)
            app_sql(cfg, "DELETE FROM orders WHERE id = %s", b + 6)  # a draft: not sent
            app_sql(cfg, "DELETE FROM orders WHERE id = %s", b + 2)  # not sent either
            insert(cfg, b + 9, "open")  # the sentinel
        wait_for(
            lambda: all(b + 9 in ids(c, b, b + 10) for c in cfgs for b in origins.values()),
            60,
            "both sentinels everywhere",
        )
        wait_for(
            lambda: all(count(c, "bridge_outbox") == 0 for c in cfgs),
            30,
            "every outbox emptied by its echoes",
        )
    for site, b in origins.items():
        assert ids(fed[site], b, b + 10) == {
            b + 1: "open",
            b + 3: None,
            b + 4: "open",
            b + 5: "paid",
            b + 8: "draft",
            b + 9: "open",
        }, site
        for other in (c for c in cfgs if c is not fed[site]):
            # the origin's draft of b+6 was deleted there, not here; b+2, b+3, b+8 never came
            assert ids(other, b, b + 10) == {
                b + 1: "open",
                b + 4: "open",
                b + 5: "paid",
                b + 6: "draft",
                b + 9: "open",
            }, (site, other.site)
    # everything that passes the filter is the same everywhere, to the last value
    passing = [[r for r in exact_rows(c) if r[1] not in (None, "draft")] for c in cfgs]
    assert passing[0] == passing[1] == passing[2]
    assert len(passing[0]) == 8
    assert count(fed["MADRID"], "orders") == 8 + 2  # and its own two drafts


def bridge(cfg: config_mod.Config, *args: str) -> Any:
    """The `bridge` command at a site, its configuration in the environment."""
    env = {
        "BRIDGE_SITE": cfg.site,
        "BRIDGE_DATABASE_URL": cfg.database_url,
        # the site's broker user: `bridge status` probes its queues (exit 1 if it cannot)
        "BRIDGE_AMQP_URL": amqp_url_for(cfg.site),
        "BRIDGE_SITES": "PARIS,LONDON,MADRID",
        "BRIDGE_TABLES": "orders",
    }
    done = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done


def test_the_filter_is_kept_shown_and_removed(
    fed: dict[str, config_mod.Config], fresh_topology: Any
) -> None:
    cfg = fed["LONDON"]
    assert all(installed(c) == WHERE for c in fed.values())
    # a later install without --where keeps it, and --sql shows what it runs
    d = for_url(cfg.database_url)
    out = io.StringIO()
    with d.connect(cfg.database_url) as conn:
        install.install_triggers(d, conn, ["orders"], install.PrintSink(d, out), False)
    ran = install_filter(cfg, None)
    assert installed(cfg) == WHERE
    assert all(d.printed(s) in out.getvalue() for s in ran)
    new_row = "(n.\"status\" <> 'draft')" if d.name == "postgresql" else "(NEW.`status` <> 'draft')"
    assert new_row in out.getvalue()
    assert new_row in bridge(cfg, "install-triggers", "-t", "orders", "--sql").output
    done = bridge(cfg, "install-triggers", "-t", "orders")
    assert "rows where status <> 'draft'" in done.output
    assert "captures rows where status <> 'draft'" in bridge(cfg, "status").output
    insert(cfg, 1, "draft")
    assert count(cfg, "bridge_outbox") == 0
    # --where '' removes it: every row is captured again
    bridge(cfg, "install-triggers", "-t", "orders", "--where", "")
    assert installed(cfg) is None
    assert "captures rows where" not in bridge(cfg, "status").output
    insert(cfg, 2, "draft")
    assert count(cfg, "bridge_outbox") == 1
    # another condition replaces it
    install_filter(cfg, "amount > 1")
    assert installed(cfg) == "amount > 1"
    insert(cfg, 3, "open")  # amount 1.5
    app_sql(cfg, "UPDATE orders SET amount = 0 WHERE id = 3")  # leaves: a delete
    types = app_sql(cfg, "SELECT type FROM bridge_outbox ORDER BY seq")
    assert [t[0] for t in types] == ["orders.insert", "orders.insert", "orders.delete"]


def test_the_filter_holds_after_an_alter_table(fed: dict[str, config_mod.Config]) -> None:
    """PostgreSQL's event trigger swaps in the after-ALTER form of the capture, which names
    the filter's columns too; MariaDB's triggers stay as they were."""
    cfg = fed["MADRID"]
    d = for_url(cfg.database_url)
    app_sql(cfg, "ALTER TABLE orders ADD COLUMN extra INT")
    with d.connect(cfg.database_url) as conn:
        assert install.capture_altered(d, conn, "orders") == (d.name == "postgresql")
    insert(cfg, 1, "draft")
    insert(cfg, 2, "open")
    app_sql(cfg, "UPDATE orders SET status = 'draft', extra = 1 WHERE id = 2")
    app_sql(cfg, "UPDATE orders SET status = 'open', extra = 2 WHERE id = 1")
    app_sql(cfg, "DELETE FROM orders WHERE id IN (1, 2)")
    types = [t[0] for t in app_sql(cfg, "SELECT type FROM bridge_outbox ORDER BY seq")]
    # 2 inserted; 2 leaves (a delete); 1 enters (an update); 1 deleted; 2's delete not sent
    assert types == ["orders.insert", "orders.delete", "orders.update", "orders.delete"]
