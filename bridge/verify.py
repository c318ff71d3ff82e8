"""`bridge verify`: do all sites hold the same rows? Row counts and an order-independent
checksum per synced table, computed from each row's values in their exact form (the form
the capture sends them in, bridge/codec.py), read from the database as text: a BC date,
24:00 or -0 is compared as it is, not as the nearest value Python holds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge import codec
from bridge.config import Config
from bridge.dialects import for_url

MASK = (1 << 64) - 1


@dataclass(frozen=True)
class TableSum:
    rows: int
    checksum: int


def table_sum(dialect: Any, conn: Any, table: str) -> TableSum:
    info = dialect.introspect(conn, table)
    names = [c.name for c in info.columns]
    total, count = 0, 0
    with conn.transaction(), conn.cursor(name="bridge_verify") as cur:
        conn.execute(dialect.render("verify_begin"))
        cur.execute(dialect.render("verify_rows", table=info.table, info=info))
        while rows := cur.fetchmany(5000):
            for row in rows:
                total = (total + codec.row_digest(dict(zip(names, row, strict=True)))) & MASK
                count += 1
    return TableSum(count, total)


def site_sums(url: str, tables: list[str]) -> dict[str, TableSum]:
    dialect = for_url(url)
    conn = dialect.connect(url)
    try:
        return {t: table_sum(dialect, conn, t) for t in tables}
    finally:
        conn.close()


def verify(
    config: Config,
    peers: Mapping[str, str],
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, dict[str, TableSum]], list[str]]:
    """Sums per site and table, and the tables that differ (empty when all agree)."""
    tables = [t.name for t in config.tables]
    urls = {config.site: config.database_url, **peers}
    sums: dict[str, dict[str, TableSum]] = {}
    for site, url in urls.items():
        if progress:
            progress(site)
        sums[site] = site_sums(url, tables)
    differing = [t for t in tables if len({sums[s][t] for s in sums}) > 1]
    return sums, differing
