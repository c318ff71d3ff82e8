"""`bridge verify`: do all sites hold the same rows, and if not, which rows differ?

`compare` (the command) finds the differing rows by key without reading every row through
Python: each site computes, in its database, the number of rows and the sum of their
hashes over ranges of the primary key (chunks of about `chunk_rows` rows, cut by walking
the first site's key in order); a range whose sums differ is cut again down to single keys
(bridge/chunks.py). A row's hash is computed from its values in their exact form (the form
the capture sends them in, bridge/codec.py), read as text: a BC date, 24:00 or -0 is
compared as it is, not as the nearest value Python holds. Two databases of different
dialects do not write the same text for every value, so a range is compared between sites
of different dialects by reading its rows through Python (`comparable`, `codec.row_digest`).

`verify` is the older whole-table comparison (row counts and one checksum per table, every
row read through Python), kept for its callers and as the benchmark's baseline."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bridge import chunks, codec
from bridge.config import Config
from bridge.dialects import for_url
from bridge.errors import ConfigError
from bridge.verify_sites import MASK, TableSource, comparable, open_sites

__all__ = ["Comparison", "KeyDiff", "MASK", "TableSum", "comparable", "compare", "verify"]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 10_000

# what a site holds for a differing key, beside what most sites hold (ties: the earlier
# site in the comparison's order, the first being this one)
SAME, DIFFERS, ABSENT, EXTRA = "same", "differs", "absent", "extra"


@dataclass(frozen=True)
class KeyDiff:
    table: str
    key: dict[str, Any]  # primary-key column -> value, JSON-serialisable (comparable form)
    digests: dict[str, int | None]  # per site, None = row absent there

    def states(self) -> dict[str, str]:
        """Per site: `same` as most sites, `differs` (another row), `absent` (most sites
        hold the row) or `extra` (most sites do not)."""
        common = Counter(self.digests.values()).most_common(1)[0][0]
        out = {}
        for site, digest in self.digests.items():
            if digest == common:
                out[site] = SAME
            elif digest is None:
                out[site] = ABSENT
            elif common is None:
                out[site] = EXTRA
            else:
                out[site] = DIFFERS
        return out


@dataclass
class Comparison:
    sites: list[str]
    rows: dict[str, dict[str, int]]  # table -> site -> row count
    differences: dict[str, list[KeyDiff]]  # table -> differing keys (empty when equal)

    @property
    def ok(self) -> bool:
        return not any(self.differences.values())

    def differing_tables(self) -> list[str]:
        return [t for t, d in self.differences.items() if d]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "sites": list(self.sites),
            "tables": {
                table: {
                    "ok": not self.differences.get(table),
                    "rows": dict(counts),
                    "differences": [
                        {
                            "key": d.key,
                            "sites": {
                                site: {
                                    "state": state,
                                    "digest": None
                                    if d.digests[site] is None
                                    else f"{d.digests[site]:016x}",
                                }
                                for site, state in d.states().items()
                            },
                        }
                        for d in self.differences.get(table, [])
                    ],
                }
                for table, counts in self.rows.items()
            },
        }


def compare(
    config: Config,
    peers: Mapping[str, str],
    tables: Sequence[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Compare the synced tables (or `tables`) of this site and `peers` (site -> database
    URL) chunk by chunk, in the databases, down to the keys that differ. The chunks are
    cut from this site's keys; each site is read in one transaction."""
    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be 1 or more, not {chunk_rows}")
    names = list(tables) if tables else [t.name for t in config.tables]
    urls = {config.site: config.database_url, **peers}
    result = Comparison(sites=list(urls), rows={}, differences={})
    with contextlib.ExitStack() as stack:
        sites = open_sites(urls, stack)
        # each site answers on its own connection, in its own thread: the sites' databases
        # work at the same time
        pool = stack.enter_context(ThreadPoolExecutor(len(sites), "bridge-verify"))

        def ask(sources: Mapping[str, Any], question: Callable[[Any], Any]) -> dict[str, Any]:
            futures = {site: pool.submit(question, s) for site, s in sources.items()}
            return {site: f.result() for site, f in futures.items()}

        for table in names:
            sources = {name: site.table(table) for name, site in sites.items()}
            counts, found = _compare_table(table, sources, chunk_rows, ask, progress)
            pk = sources[config.site].pk_names
            result.rows[table] = counts
            result.differences[table] = [
                KeyDiff(table, dict(zip(pk, key, strict=True)), digests)
                for key, digests in found.items()
            ]
            if found:
                log.warning(
                    "verify: table %s: %d key(s) differ between sites %s",
                    table,
                    len(found),
                    ", ".join(urls),
                )
    return result


def _compare_table(
    table: str,
    sources: Mapping[str, TableSource],
    chunk_rows: int,
    ask: chunks.Ask,
    progress: Callable[[str], None] | None,
) -> tuple[dict[str, int], dict[chunks.Key, chunks.Digests]]:
    """Row counts per site, and the differing keys with each site's hash."""
    dialects = {site: s.site.dialect.name for site, s in sources.items()}
    mixed = len(set(dialects.values())) > 1

    def compare_range(
        lower: chunks.Bound, upper: chunks.Bound, sums: Mapping[str, chunks.Summary] | None
    ) -> dict[chunks.Key, chunks.Digests]:
        if mixed:
            return _across_dialects(sources, dialects, sums, lower, upper, ask)
        return chunks.narrow(sources, lower, upper, sums, ask=ask)

    def report(done: int, total: int) -> None:
        if progress:
            progress(f"{table}: chunk {done}/{total} summed at every site")

    return chunks.compare_table(table, sources, chunk_rows, compare_range, ask, report)


def _across_dialects(
    sources: Mapping[str, TableSource],
    dialects: Mapping[str, str],
    sums: Mapping[str, chunks.Summary] | None,
    lower: chunks.Bound,
    upper: chunks.Bound,
    ask: chunks.Ask,
) -> dict[chunks.Key, chunks.Digests]:
    """A range compared between sites of different dialects: their hashes in the database
    are not comparable, so the range's rows are read through Python, once per group of
    sites of one dialect whose sums agree (those hold the same rows)."""
    if sums is None:
        sums = ask(sources, chunks.summary_of(lower, upper))
    if all(s.rows == 0 for s in sums.values()):
        return {}
    groups: dict[tuple[str, chunks.Summary], str] = {}
    for site in sources:
        groups.setdefault((dialects[site], sums[site]), site)
    read = {first: sources[first].row_digests(lower, upper) for first in groups.values()}
    return chunks.differing_keys(
        {site: read[groups[(dialects[site], sums[site])]] for site in sources}
    )


@dataclass(frozen=True)
class TableSum:
    rows: int
    checksum: int


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
