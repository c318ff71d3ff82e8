"""`bridge verify` down to the keys: rows changed, deleted and inserted behind bridge's back
at one site (the capture skips a transaction marked as bridge's own) are found by key at
that site and nowhere else, in chunks and sub-ranges of every size; composite keys; rows
beyond either end of the reference site's keys; a federation of PostgreSQL and MariaDB
sites, whose ranges are compared through Python."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from bridge import verify
from bridge.cli import main
from bridge.config import Config
from bridge.dialects import for_url
from tests.conftest import SiteMaker, db_of, outbox_empty, pg_url
from tests.federation import make_federation
from tests.integration.test_cli_run import env_of

pytestmark = pytest.mark.integration

ROWS = 3000
FILL = f"""
INSERT INTO orders (id, customer, amount, note, updated_at, blob)
SELECT g, 'customer ' || g, g * 1.25, CASE WHEN g % 7 = 0 THEN NULL ELSE 'n' || g END,
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute 0.000123 second',
       CASE WHEN g % 5 = 0 THEN decode(md5(g::text), 'hex') END
FROM generate_series(1, {ROWS}) AS g
"""

LINES = """
CREATE TABLE lines (
    order_id bigint,
    line     text,
    qty      int NOT NULL,
    PRIMARY KEY (order_id, line)
)
"""


def behind_bridges_back(cfg: Config, *statements: str) -> None:
    """Statements in one transaction that the capture skips (as bridge's own apply)."""
    with psycopg.connect(pg_url(db_of(cfg)), autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL bridge.applying = 'on'")
        for statement in statements:
            conn.execute(statement)
    assert outbox_empty(cfg), f"{cfg.site}: the capture took a change made behind its back"


def peers(sites: dict[str, Config], reference: str = "PARIS") -> dict[str, str]:
    return {c.site: c.database_url for name, c in sites.items() if name != reference}


def found(result: verify.Comparison, table: str = "orders") -> dict[Any, dict[str, str]]:
    """Differing keys (one column: its value; several: a tuple) -> each site's state."""
    out: dict[Any, dict[str, str]] = {}
    for d in result.differences[table]:
        values = tuple(d.key.values())
        out[values[0] if len(values) == 1 else values] = d.states()
    return out


def test_equal_sites_are_ok_in_any_chunk_size(sites: dict[str, Config]) -> None:
    for cfg in sites.values():
        behind_bridges_back(cfg, FILL)
    for chunk_rows in (10_000, 700, 1):
        result = verify.compare(sites["PARIS"], peers(sites), chunk_rows=chunk_rows)
        assert result.ok, result.to_json()
        assert result.rows == {"orders": {"PARIS": ROWS, "LONDON": ROWS, "MADRID": ROWS}}
        assert result.differences == {"orders": []}


@pytest.mark.parametrize("chunk_rows", [10_000, 500, 64, 7])
def test_changed_deleted_and_inserted_rows_are_found_by_key(
    sites: dict[str, Config], chunk_rows: int
) -> None:
    for cfg in sites.values():
        behind_bridges_back(cfg, FILL)
    behind_bridges_back(
        sites["LONDON"],
        "UPDATE orders SET amount = amount + 0.0001 WHERE id = 17",
        "UPDATE orders SET note = NULL WHERE id = 2222",  # a value to NULL
        "UPDATE orders SET note = '' WHERE id = 14",  # NULL to an empty string
        "DELETE FROM orders WHERE id IN (1, 1500, 3000)",  # the first, a middle, the last
        "INSERT INTO orders (id, customer) VALUES (1500000, 'after the last key')",
        "INSERT INTO orders (id, customer) VALUES (-4, 'before the first key')",
        "INSERT INTO orders (id, customer) VALUES (0, 'also before')",
    )
    result = verify.compare(sites["PARIS"], peers(sites), chunk_rows=chunk_rows)
    assert not result.ok
    ok, absent, extra, differs = "same", "absent", "extra", "differs"

    def at_london(state: str) -> dict[str, str]:
        return {"PARIS": ok, "LONDON": state, "MADRID": ok}

    assert found(result) == {
        17: at_london(differs),
        2222: at_london(differs),
        14: at_london(differs),
        1: at_london(absent),
        1500: at_london(absent),
        3000: at_london(absent),
        1500000: at_london(extra),
        -4: at_london(extra),
        0: at_london(extra),
    }
    assert result.rows["orders"] == {"PARIS": ROWS, "LONDON": ROWS, "MADRID": ROWS}
    by_key = {d.key["id"]: d for d in result.differences["orders"]}
    assert by_key[1].digests["LONDON"] is None and by_key[0].digests["PARIS"] is None
    assert (
        by_key[17].digests["PARIS"] == by_key[17].digests["MADRID"] != by_key[17].digests["LONDON"]
    )
    json.dumps(result.to_json())  # JSON-serialisable as it is


def test_the_reference_site_may_hold_the_extra_rows(sites: dict[str, Config]) -> None:
    """The chunks are cut from the first site's keys: rows only it holds, at both ends and
    in the middle, and a peer's rows where the first site has none at all."""
    for cfg in sites.values():
        behind_bridges_back(cfg, FILL)
    behind_bridges_back(
        sites["PARIS"],
        "INSERT INTO orders (id, customer) VALUES (-1, 'p'), (5000, 'p'), (5001, 'p')",
        "DELETE FROM orders WHERE id BETWEEN 1001 AND 1999",
    )
    result = verify.compare(sites["PARIS"], peers(sites), chunk_rows=250)
    states = found(result)
    assert set(states) == {-1, 5000, 5001, *range(1001, 2000)}
    assert states[-1] == {"PARIS": "extra", "LONDON": "same", "MADRID": "same"}
    assert states[1500] == {"PARIS": "absent", "LONDON": "same", "MADRID": "same"}
    assert result.rows["orders"]["PARIS"] == ROWS + 3 - 999


def test_an_empty_reference_site_still_finds_every_row(sites: dict[str, Config]) -> None:
    behind_bridges_back(sites["LONDON"], FILL)
    result = verify.compare(sites["PARIS"], peers(sites), chunk_rows=100)
    assert set(found(result)) == set(range(1, ROWS + 1))
    assert result.rows["orders"] == {"PARIS": 0, "LONDON": ROWS, "MADRID": 0}


def test_composite_keys_are_ranged_in_key_order(make_sites: SiteMaker) -> None:
    sites = make_sites(LINES, tables={"lines": "lww"})
    fill = (
        "INSERT INTO lines SELECT o, l, o * 10 + length(l) FROM generate_series(1, 400) AS o, "
        "unnest(ARRAY['a', 'B', 'b', 'a b', 'ü', '']) AS l"
    )
    for cfg in sites.values():
        behind_bridges_back(cfg, fill)
    behind_bridges_back(
        sites["MADRID"],
        "UPDATE lines SET qty = -1 WHERE order_id = 200 AND line = 'B'",
        "DELETE FROM lines WHERE order_id = 399 AND line = ''",
        "INSERT INTO lines VALUES (200, 'aa', 1), (401, '', 1), (0, 'z', 1)",
    )
    for chunk_rows in (10_000, 97, 5):
        result = verify.compare(sites["PARIS"], peers(sites), ["lines"], chunk_rows=chunk_rows)
        at_madrid = {
            k: s["MADRID"] for k, s in found(result, "lines").items() if s["MADRID"] != "same"
        }
        assert at_madrid == {
            (200, "B"): "differs",
            (399, ""): "absent",
            (200, "aa"): "extra",
            (401, ""): "extra",
            (0, "z"): "extra",
        }, chunk_rows
        assert len(result.differences["lines"]) == 5
        assert {tuple(d.key) for d in result.differences["lines"]} == {("order_id", "line")}


def test_the_command_lists_the_keys_and_prints_json(sites: dict[str, Config]) -> None:
    for cfg in sites.values():
        behind_bridges_back(cfg, FILL)
    behind_bridges_back(sites["MADRID"], "DELETE FROM orders WHERE id = 42")
    env = env_of(sites["PARIS"])
    args = ["verify", *(f"--peer={s}={u}" for s, u in peers(sites).items()), "--chunk-rows=300"]
    runner = CliRunner()
    out = runner.invoke(main, args, env=env, catch_exceptions=False)
    assert out.exit_code == 1, out.output
    assert "sites differ on table(s): orders" in out.output
    madrid = [line for line in out.output.splitlines() if " MADRID " in line]
    assert madrid and "1 keys differ" in madrid[0]
    assert "id=42" in out.output and "absent" in out.output
    out = runner.invoke(main, [*args, "--json"], env=env, catch_exceptions=False)
    assert out.exit_code == 1
    data = json.loads(out.stdout)
    assert data["ok"] is False
    (diff,) = data["tables"]["orders"]["differences"]
    assert diff["key"] == {"id": 42}
    assert diff["sites"]["MADRID"] == {"state": "absent", "digest": None}
    assert diff["sites"]["PARIS"]["state"] == "same"
    behind_bridges_back(sites["PARIS"], "DELETE FROM orders WHERE id = 42")
    behind_bridges_back(sites["LONDON"], "DELETE FROM orders WHERE id = 42")
    out = runner.invoke(main, [*args, "--json", "--table=orders"], env=env)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["ok"] is True


# --- PostgreSQL beside MariaDB ----------------------------------------------------------------

MIXED_ROWS = 1200


def mixed_rows() -> list[tuple[Any, ...]]:
    return [
        (
            n,
            f"customer {n} ü",
            f"{n * 1.25:.4f}",
            None if n % 7 == 0 else f"note {n}",
            f"2026-01-01 00:{n % 60:02d}:{n % 60:02d}.{n:06d}",
            bytes([n % 256, 0, 255]) if n % 5 == 0 else None,
        )
        for n in range(1, MIXED_ROWS + 1)
    ]


def fill_behind_bridges_back(cfg: Config, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Rows written at a site of either dialect in a transaction its capture skips."""
    dialect = for_url(cfg.database_url)
    with dialect.connect(cfg.database_url) as conn, conn.transaction():
        if dialect.name == "postgresql":
            conn.execute("SET LOCAL bridge.applying = 'on'")
        else:
            conn.execute("SET @bridge_applying = 1")
        for text, params in statements:
            conn.execute(text, {f"p{n}": v for n, v in enumerate(params)} if params else None)
    with dialect.connect(cfg.database_url) as conn:
        outbox = conn.execute("SELECT COUNT(*) FROM bridge_outbox").fetchall()[0][0]
    assert outbox == 0, f"{cfg.site}: the capture took a change made behind its back"


def test_a_mixed_federation_finds_a_row_changed_on_mariadb(fresh_topology: Any) -> None:
    fed = make_federation("vk_mixed", "mariadb")
    insert = (
        "INSERT INTO orders (id, customer, amount, note, updated_at, data) "
        "VALUES (%(p0)s, %(p1)s, %(p2)s, %(p3)s, %(p4)s, %(p5)s)"
    )
    for name, cfg in fed.items():
        zone = "+00" if name == "PARIS" else ""
        fill_behind_bridges_back(cfg, [(insert, (*r[:4], r[4] + zone, r[5])) for r in mixed_rows()])
    others = {c.site: c.database_url for n, c in fed.items() if n != "PARIS"}
    for chunk_rows in (10_000, 100):
        result = verify.compare(fed["PARIS"], others, chunk_rows=chunk_rows)
        assert result.ok, result.to_json()
        assert set(result.rows["orders"].values()) == {MIXED_ROWS}
    fill_behind_bridges_back(
        fed["MADRID"],
        [
            ("UPDATE orders SET note = 'changed on MariaDB' WHERE id = 333", ()),
            ("DELETE FROM orders WHERE id = 1000", ()),
        ],
    )
    fill_behind_bridges_back(fed["LONDON"], [("UPDATE orders SET amount = 1 WHERE id = 5", ())])
    for chunk_rows in (10_000, 100, 9):
        result = verify.compare(fed["PARIS"], others, chunk_rows=chunk_rows)
        assert found(result) == {
            333: {"PARIS": "same", "LONDON": "same", "MADRID": "differs"},
            1000: {"PARIS": "same", "LONDON": "same", "MADRID": "absent"},
            5: {"PARIS": "same", "LONDON": "differs", "MADRID": "same"},
        }, chunk_rows


CODES = "CREATE TABLE codes (code text PRIMARY KEY, label text)"


def test_a_site_that_orders_text_keys_otherwise(
    make_sites: SiteMaker, caplog: pytest.LogCaptureFixture
) -> None:
    """MADRID's key column sorts under an ICU collation ('a' < 'B'), the others' under C
    ('B' < 'a'): the chunks cut from PARIS's keys do not split MADRID's rows, verify sees
    it and compares the table as one range, without a false difference."""
    sites = make_sites(CODES, tables={"codes": "lww"})
    behind_bridges_back(
        sites["MADRID"], 'ALTER TABLE codes ALTER COLUMN code TYPE text COLLATE "und-x-icu"'
    )
    fill = (
        "INSERT INTO codes SELECT c || n, 'label ' || c || n FROM generate_series(1, 400) AS n, "
        "unnest(ARRAY['a', 'B', 'c', 'D', 'é']) AS c"
    )
    for cfg in sites.values():
        behind_bridges_back(cfg, fill)
    for chunk_rows in (10_000, 100, 3):
        result = verify.compare(sites["PARIS"], peers(sites), ["codes"], chunk_rows=chunk_rows)
        assert result.ok, (chunk_rows, result.to_json()["tables"]["codes"]["differences"][:3])
    assert "order its keys differently" in caplog.text  # the chunks were seen not to split
    behind_bridges_back(
        sites["MADRID"],
        "UPDATE codes SET label = 'changed' WHERE code = 'c17'",
        "DELETE FROM codes WHERE code = 'B200'",
    )
    for chunk_rows in (10_000, 100, 3):
        result = verify.compare(sites["PARIS"], peers(sites), ["codes"], chunk_rows=chunk_rows)
        assert found(result, "codes") == {
            "c17": {"PARIS": "same", "LONDON": "same", "MADRID": "differs"},
            "B200": {"PARIS": "same", "LONDON": "same", "MADRID": "absent"},
        }, chunk_rows
