"""Federations of sites on different dialects, for the conformance suite and the mixed
tests: each site's database on the dialect the layout names, bridge initialised and
capturing `orders`, and what a test needs to write as an application and read back.

PARIS, the archive site, is PostgreSQL in every layout (the archiver is PostgreSQL's for
now); LONDON and MADRID run the dialect under test, so that a change crosses both ways
between dialects and between two sites of the dialect under test.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from bridge import config as config_mod
from bridge import install, verify
from bridge.dialects import for_url
from tests import dbs
from tests.conftest import DB_PREFIX, make_config

SERVER_URLS = {"mssql": "BRIDGE_TEST_MSSQL_URL", "oracle": "BRIDGE_TEST_ORACLE_URL"}
DIALECTS = ("postgresql", "mariadb", "mssql", "oracle")
SKIP_MARK = pytest.mark.allowed_skip("no SQL Server/Oracle server on this machine")


def dialect_params() -> list[Any]:
    """pytest params of the conformance suite: every dialect, SQL Server and Oracle allowed
    to skip (they run where their URL variable names a server)."""
    return [
        pytest.param(d, marks=[SKIP_MARK]) if d in SERVER_URLS else pytest.param(d)
        for d in DIALECTS
    ]


def require_server(dialect: str) -> None:
    """Skip, saying why, a dialect whose server is not reachable from here."""
    if dialect in SERVER_URLS and not os.environ.get(SERVER_URLS[dialect]):
        pytest.skip(
            f"no {dialect} server: set {SERVER_URLS[dialect]} to a database URL to run this "
            "live (these machines have none: not in Debian's packages or PyPI, no registry)"
        )


def layout(dialect: str) -> dict[str, str]:
    return {"PARIS": "postgresql", "LONDON": dialect, "MADRID": dialect}


def setup_site(cfg: config_mod.Config) -> None:
    dialect = for_url(cfg.database_url)
    with dialect.connect(cfg.database_url) as conn:
        install.init(dialect, conn, cfg.site, install.ConnectionSink(conn), True)
        install.install_triggers(
            dialect, conn, [t.name for t in cfg.tables], install.ConnectionSink(conn), True
        )


def make_federation(
    name: str, dialect: str, ddl: dict[str, str] | None = None, **over: Any
) -> dict[str, config_mod.Config]:
    """Three sites (PARIS on PostgreSQL, LONDON and MADRID on `dialect`), their databases
    created from `ddl` (per dialect; the `orders` of tests/dbs.py by default)."""
    require_server(dialect)
    tables = ddl or dbs.ORDERS
    configs = {}
    for site, site_dialect in layout(dialect).items():
        db = f"{DB_PREFIX}{name[:24].lower()}_{site.lower()}"
        dbs.create(site_dialect, db, tables[site_dialect])
        cfg = make_config(site, db, database_url=dbs.url(site_dialect, db), **over)
        setup_site(cfg)
        configs[site] = cfg
    return configs


def dialect_of(cfg: config_mod.Config) -> str:
    return for_url(cfg.database_url).name


def db_of(cfg: config_mod.Config) -> str:
    return cfg.database_url.rsplit("/", 1)[1]


def app_sql(cfg: config_mod.Config, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """One statement as the site's application runs it (`%s` parameters)."""
    return dbs.sql(dialect_of(cfg), db_of(cfg), query, *params)


def exact_rows(cfg: config_mod.Config, table: str = "orders") -> list[tuple[Any, ...]]:
    """The rows of a table with each value in bridge's exact form (what `bridge verify`
    compares), sorted: comparable across dialects."""
    dialect = for_url(cfg.database_url)
    with dialect.connect(cfg.database_url) as conn:
        found = [tuple(r.values()) for r in verify.table_rows(dialect, conn, table)]
    return sorted(found, key=repr)


def same_rows(configs: list[config_mod.Config], table: str = "orders") -> bool:
    first = exact_rows(configs[0], table)
    return all(exact_rows(c, table) == first for c in configs[1:])


def count(cfg: config_mod.Config, table: str, where: str = "") -> int:
    rows = app_sql(cfg, f"SELECT COUNT(*) FROM {table}" + (f" WHERE {where}" if where else ""))
    return int(rows[0][0])
