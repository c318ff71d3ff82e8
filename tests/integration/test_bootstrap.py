"""`bridge bootstrap`: a fourth site, ROME, joins PARIS, LONDON and MADRID while they keep
writing, and ends up with every row and a clean `bridge verify`."""

from __future__ import annotations

import pytest

from bridge import bootstrap
from bridge.errors import RefusedError
from tests import dbs
from tests.conftest import ORDERS_DDL, converged, db_of, outbox_empty, running, sql, wait_for
from tests.federation import make_federation, same_rows
from tests.joining import (
    Writers,
    apply_four_site_topology,
    drop_rome_queue,
    make_rome,
    rome_queue_state,
    rome_user,  # noqa: F401 - fixture
    seed,
    verified,
)

pytestmark = pytest.mark.integration

SHARED = range(1, 3001)


def tombstones(cfg) -> int:
    return sql(
        db_of(cfg),
        "SELECT count(*) FROM bridge_row_version WHERE table_name = 'orders' AND deleted",
    )[0][0]


def test_rome_joins_while_the_others_write(sites, rome_user, request):  # noqa: F811
    drop_rome_queue()
    cfgs = list(sites.values())
    paris, london = sites["PARIS"], sites["LONDON"]
    rome = make_rome(request, ORDERS_DDL)
    seed(paris, SHARED)
    with running(*cfgs):
        wait_for(lambda: converged(cfgs), 60, "the seed at every site")
        sql(db_of(london), "DELETE FROM orders WHERE id <= 50")  # tombstones to copy
        wait_for(lambda: tombstones(paris) >= 50, 60, "LONDON's deletes applied at PARIS")
        with Writers(cfgs, SHARED) as writers:
            wait_for(lambda: writers.changes > 300, 60, "the applications writing")
            apply_four_site_topology()  # the operator's step: SITE_ROME exists from now
            before = writers.changes
            report = bootstrap.bootstrap(rome, paris.site, paris.database_url, chunk_rows=250)
            assert not report.resumed
            assert report.rows["orders"] >= len(SHARED) - 50 - 300
            assert report.tombstones["orders"] >= 50
            assert writers.changes > before, "the applications kept writing during the copy"
            # a second bootstrap refuses: the site is filled
            with pytest.raises(RefusedError, match="bootstrapped from PARIS already"):
                bootstrap.bootstrap(rome, paris.site, paris.database_url)
            with running(rome):
                during = writers.changes
                wait_for(lambda: writers.changes > during + 300, 60, "writes while ROME runs")
                assert not writers.errors, writers.errors
            # ROME's bridge stopped while the others kept writing; it catches up below
        with running(rome):
            everyone = [*cfgs, rome]
            try:
                wait_for(lambda: converged(everyone), 120, "all four sites holding the same rows")
            except AssertionError as exc:
                inbox = sql(db_of(rome), "SELECT count(*), max(applied_at) FROM bridge_inbox")
                raise AssertionError(f"{exc}; {rome_queue_state()}; ROME's inbox {inbox}") from None
            wait_for(lambda: all(outbox_empty(c) for c in everyone), 60, "outboxes empty")
    assert verified([rome, *cfgs]) == []
    assert sql(db_of(rome), "SELECT count(*) FROM orders WHERE id <= 50")[0][0] == 0
    # nothing of the copy was captured at ROME (it would have gone back to the others)
    assert sql(db_of(rome), "SELECT count(*) FROM bridge_outbox")[0][0] == 0


def test_refuses_before_the_queue_exists(sites, rome_user, request):  # noqa: F811
    drop_rome_queue()
    paris = sites["PARIS"]
    rome = make_rome(request, ORDERS_DDL)
    with pytest.raises(RefusedError, match="topology apply"):
        bootstrap.bootstrap(rome, paris.site, paris.database_url)


def test_refuses_a_site_with_rows_unless_forced(sites, rome_user, request):  # noqa: F811
    drop_rome_queue()
    paris = sites["PARIS"]
    rome = make_rome(request, ORDERS_DDL)
    seed(paris, range(1, 101))
    apply_four_site_topology()
    sql(db_of(rome), "INSERT INTO orders (id, customer) VALUES (7, 'local')")
    with pytest.raises(RefusedError, match="hold rows"):
        bootstrap.bootstrap(rome, paris.site, paris.database_url)
    report = bootstrap.bootstrap(rome, paris.site, paris.database_url, force=True)
    assert report.rows["orders"] == 100
    assert sql(db_of(rome), "SELECT customer FROM orders WHERE id = 7") == [("seed",)]


def test_a_mariadb_site_joins_from_postgresql(make_sites, rome_user, request):  # noqa: F811
    """PostgreSQL -> MariaDB: values cross as the applier writes them (bridge/codec.py)."""
    drop_rome_queue()
    sites = make_sites(dbs.ORDERS["postgresql"])
    cfgs = list(sites.values())
    paris, london = sites["PARIS"], sites["LONDON"]
    rome = make_rome(request, dbs.ORDERS["mariadb"], dialect="mariadb")
    sql(
        db_of(paris),
        "INSERT INTO orders (id, customer, amount, note, updated_at, data) "
        "SELECT i, 'c' || i, i * 1.25, CASE WHEN i % 3 = 0 THEN NULL ELSE 'é ' || i END, "
        "timestamptz '2026-01-01 12:00:00.123456Z' + i * interval '1 second', "
        "decode(md5(i::text), 'hex') FROM generate_series(1, 1000) AS i",
    )
    with running(*cfgs):
        wait_for(lambda: converged(cfgs), 60, "the seed at every site")
        sql(db_of(london), "DELETE FROM orders WHERE id <= 20")
        wait_for(lambda: tombstones(paris) >= 20, 60, "LONDON's deletes applied at PARIS")
        apply_four_site_topology()
        report = bootstrap.bootstrap(rome, paris.site, paris.database_url, chunk_rows=300)
        assert report.rows["orders"] == 980 and report.tombstones["orders"] >= 20
        sql(db_of(london), "UPDATE orders SET note = 'later' WHERE id BETWEEN 21 AND 40")
        sql(db_of(london), "DELETE FROM orders WHERE id BETWEEN 41 AND 45")
        with running(rome):
            everyone = [*cfgs, rome]
            wait_for(lambda: same_rows(everyone), 120, "all four sites holding the same rows")
            wait_for(lambda: all(outbox_empty(c) for c in cfgs), 60, "outboxes empty")
    assert verified([rome, *cfgs]) == []


def test_a_postgresql_site_joins_from_mariadb(fresh_topology, rome_user, request):  # noqa: F811
    """MariaDB -> PostgreSQL: LONDON (MariaDB) is the source."""
    drop_rome_queue()
    sites = make_federation("bootfrommaria", "mariadb")
    cfgs = list(sites.values())
    paris, london = sites["PARIS"], sites["LONDON"]
    rome = make_rome(request, dbs.ORDERS["postgresql"])
    dbs.sql(
        "mariadb",
        db_of(london),
        "INSERT INTO orders (id, customer, amount, note, updated_at, data) "
        "SELECT seq, CONCAT('c', seq), seq * 1.25, IF(seq % 3 = 0, NULL, CONCAT('é ', seq)), "
        "TIMESTAMP'2026-01-01 12:00:00.123456' + INTERVAL seq SECOND, UNHEX(MD5(seq)) "
        "FROM seq_1_to_1000",
    )
    with running(*cfgs):
        wait_for(lambda: same_rows(cfgs), 60, "the seed at every site")
        sql(db_of(paris), "DELETE FROM orders WHERE id <= 20")
        wait_for(lambda: same_rows(cfgs), 60, "PARIS's deletes applied at LONDON")
        apply_four_site_topology()
        report = bootstrap.bootstrap(rome, london.site, london.database_url, chunk_rows=300)
        assert report.rows["orders"] == 980 and report.tombstones["orders"] >= 20
        sql(db_of(paris), "UPDATE orders SET note = 'later' WHERE id BETWEEN 21 AND 40")
        sql(db_of(paris), "DELETE FROM orders WHERE id BETWEEN 41 AND 45")
        with running(rome):
            everyone = [*cfgs, rome]
            wait_for(lambda: same_rows(everyone), 120, "all four sites holding the same rows")
    assert verified([rome, *cfgs]) == []
