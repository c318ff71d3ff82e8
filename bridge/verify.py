"""`bridge verify`: do all sites hold the same rows? Row counts and an order-independent
checksum per synced table, computed from each row's values in their exact form (the form
the capture sends them in, bridge/codec.py), read from the database as text: a BC date,
24:00 or -0 is compared as it is, not as the nearest value Python holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
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


def comparable(value: Any, kind: str) -> Any:
    """A value as verify_rows read it, in the same form whatever the dialect: a boolean as
    true/false (MariaDB reads 1/0, or the JSON text), an integer as a number (some drivers
    read a DECIMAL), a JSON document parsed and written back with its keys sorted (each
    database keeps its own spacing and key order)."""
    if value is None:
        return None
    if kind == "bool":
        return value in (True, 1, "1", "true", "t")
    if kind == "int" and not isinstance(value, bool):
        return int(value)
    if kind == "json" and isinstance(value, str):
        try:
            return codec.dumps(codec.loads(value), sort_keys=True)
        except ValueError:
            return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def table_rows(dialect: Any, conn: Any, table: str, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every row of a table, each value in its exact form made comparable across dialects
    (`comparable`), read in one transaction."""
    info = dialect.introspect(conn, table)
    kinds = [(c.name, c.kind) for c in info.columns]
    with conn.transaction(), conn.cursor(name="bridge_verify") as cur:
        conn.execute(dialect.render("verify_begin"))
        cur.execute(dialect.render("verify_rows", table=info.table, info=info))
        while rows := cur.fetchmany(batch):
            for row in rows:
                yield {n: comparable(v, k) for (n, k), v in zip(kinds, row, strict=True)}


def table_sum(dialect: Any, conn: Any, table: str) -> TableSum:
    total, count = 0, 0
    for row in table_rows(dialect, conn, table):
        total = (total + codec.row_digest(row)) & MASK
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
