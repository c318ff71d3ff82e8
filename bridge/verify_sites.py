"""The sites as `bridge verify` reads them: one connection and one transaction per site
for the whole comparison, and per table a `chunks.Source` whose answers come from the
verify_chunk_* templates of the site's dialect."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from bridge import codec
from bridge.chunks import Bound, Key, Summary
from bridge.dialects import for_url
from bridge.dialects.base import Dialect, TableInfo
from bridge.errors import DatabaseError, SchemaError

log = logging.getLogger(__name__)

MASK = (1 << 64) - 1


def comparable(value: Any, kind: str) -> Any:
    """A value as the verify templates read it, in the same form whatever the dialect: a
    boolean as true/false (MariaDB reads 1/0, or the JSON text), an integer as a number
    (some drivers read a DECIMAL), a JSON document parsed and written back with its keys
    sorted (each database keeps its own spacing and key order)."""
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


class Site:
    """One site's database, open for a comparison: a connection in one transaction begun
    with verify_begin (the settings the exact forms are read under)."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.dialect: Dialect = for_url(url)
        self.conn: Any = self.dialect.connect(url)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Site]:
        try:
            with self.conn.transaction():
                begin = self.dialect.render("verify_begin")
                if begin:
                    self.conn.execute(begin)
                yield self
        finally:
            self.conn.close()

    def table(self, table: str) -> TableSource:
        try:
            info = self.dialect.introspect(self.conn, table)
        except SchemaError as exc:
            raise SchemaError(f"site {self.name}: {exc}") from None
        return TableSource(self, info)


class TableSource:
    """One table at one site, as the narrowing asks it (bridge/chunks.py `Source`)."""

    def __init__(self, site: Site, info: TableInfo) -> None:
        self.site = site
        self.info = info
        self.pk_kinds = [c.kind for c in info.pk]
        self.kinds = [(c.name, c.kind) for c in info.columns]

    @property
    def pk_names(self) -> list[str]:
        return [c.name for c in self.info.pk]

    def _run(
        self, template: str, lower: Bound, upper: Bound, **extra: Any
    ) -> list[tuple[Any, ...]]:
        d = self.site.dialect
        text = d.render(
            template,
            table=self.info.table,
            info=self.info,
            lower=lower is not None,
            upper=upper is not None,
        )
        params: dict[str, Any] = dict(extra)
        for side, bound in (("lo", lower), ("hi", upper)):
            if bound is not None:
                for n, (value, kind) in enumerate(zip(bound, self.pk_kinds, strict=True)):
                    params[f"{side}{n}"] = codec.to_text(value, kind)
        try:
            with self.site.conn.cursor() as cur:
                cur.execute(text, params or None)
                return [tuple(r) for r in cur.fetchall()]
        except d.errors.any as exc:
            raise DatabaseError(
                f"site {self.site.name}, table {self.info.table.name}: verify could not read "
                f"a key range ({template}): {exc}; check that the table is readable there"
            ) from exc

    def _key(self, values: tuple[Any, ...]) -> Key:
        return tuple(comparable(v, k) for v, k in zip(values, self.pk_kinds, strict=True))

    def bounds(self, lower: Bound, upper: Bound, every: int) -> list[Key]:
        return [self._key(r) for r in self._run("verify_chunk_bounds", lower, upper, every=every)]

    def count(self) -> int:
        ((count,),) = self._run("verify_count", None, None)
        return int(count)

    def summary(self, lower: Bound, upper: Bound) -> Summary:
        ((count, total),) = self._run("verify_chunk_sum", lower, upper)
        return Summary(int(count), int(total or 0) & MASK)

    def digests(self, lower: Bound, upper: Bound) -> dict[Key, int]:
        width = len(self.pk_kinds)
        return {
            self._key(r[:width]): int(r[width]) & MASK
            for r in self._run("verify_chunk_keys", lower, upper)
        }

    def row_digests(self, lower: Bound, upper: Bound) -> dict[Key, int]:
        """Each row of the range by key, hashed in Python from its values made comparable
        across dialects (`comparable`, codec.row_digest): what sites of different dialects
        are compared by."""
        out: dict[Key, int] = {}
        for r in self._run("verify_chunk_rows", lower, upper):
            row = {n: comparable(v, k) for (n, k), v in zip(self.kinds, r, strict=True)}
            out[tuple(row[c.name] for c in self.info.pk)] = codec.row_digest(row)
        return out


def open_sites(urls: Mapping[str, str], stack: contextlib.ExitStack) -> dict[str, Site]:
    """Connect to every site (closed when `stack` closes), each in its reading transaction."""
    sites: dict[str, Site] = {}
    for name, url in urls.items():
        sites[name] = stack.enter_context(Site(name, url).reading())
    return sites
