"""How `bridge verify` finds the rows that differ between sites without reading them all
(as pt-table-checksum and pt-table-sync do): a table is cut into ranges of its primary key
(chunks of about `chunk_rows` rows, cut by walking one site's key in order), each site sums
the hashes of its rows in each range, and a range whose sums differ is cut again, down to
ranges small enough to list each row's key and hash.

This module is the narrowing alone, over `Source`s: what one site answers about a key
range. It knows nothing of SQL (bridge/verify.py reads the sites). A key is a tuple of its
column values in key order; a range is (lower, upper]: after `lower` (None: from the
start), up to and including `upper` (None: to the end). The ranges cut from one site's
keys cover every key, so a row that only another site holds is in one of them too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

Key = tuple[object, ...]
Bound = Key | None
Digests = dict[str, int | None]  # per site; None: the row is absent there

FANOUT = 16  # sub-ranges a differing range is cut into
# a differing range with at most this many rows at every site is listed (keys and hashes:
# some 30 KB a site); the narrowing then asks at most a few dozen questions per differing
# chunk of 10,000 rows, even when every row of it differs
LEAF_ROWS = 1000
MAX_DEPTH = 64  # a safeguard: the ranges shrink at every level (see `narrow`)


@dataclass(frozen=True)
class Summary:
    """A site's rows in one range: how many, and a fingerprint of their values that is
    equal at two sites when they hold the same rows."""

    rows: int
    fingerprint: object


class Source(Protocol):
    """One site, as the narrowing asks it."""

    def bounds(self, lower: Bound, upper: Bound, every: int) -> list[Key]:
        """The key of every `every`-th row of the range, in key order."""
        ...

    def count(self) -> int:
        """The table's rows."""
        ...

    def summary(self, lower: Bound, upper: Bound) -> Summary: ...

    def digests(self, lower: Bound, upper: Bound) -> dict[Key, int]:
        """Each row of the range: its key and its hash."""
        ...


# How the sources are asked one question each: in turn (`in_turn`), or all at once
# (bridge/verify.py asks the sites in parallel: each has its own connection).
Ask = Callable[[Mapping[str, "Source"], Callable[["Source"], Any]], dict[str, Any]]


def in_turn(sources: Mapping[str, Source], question: Callable[[Source], Any]) -> dict[str, Any]:
    return {site: question(s) for site, s in sources.items()}


def ranges(
    cuts: list[Key], lower: Bound = None, upper: Bound = None
) -> Iterator[tuple[Bound, Bound]]:
    """The consecutive ranges (lower, c1], (c1, c2], ... (cn, upper] that `cuts` make of
    (lower, upper]; the last is left out when the last cut is `upper` itself."""
    start = lower
    for cut in cuts:
        if cut == upper:
            break
        yield start, cut
        start = cut
    yield start, upper


def differing_keys(per_site: Mapping[str, Mapping[Key, int]]) -> dict[Key, Digests]:
    """The keys whose rows are not the same at every site (absent at some, or with another
    hash), each with every site's hash; in the first site's key order, then the others'."""
    keys: dict[Key, None] = {}
    for found in per_site.values():
        keys.update(dict.fromkeys(found))
    out: dict[Key, Digests] = {}
    for key in keys:
        digests: Digests = {site: found.get(key) for site, found in per_site.items()}
        if len(set(digests.values())) > 1:
            out[key] = digests
    return out


def summary_of(lower: Bound, upper: Bound) -> Callable[[Source], Summary]:
    """The question "your summary of (lower, upper]"."""
    return lambda s: s.summary(lower, upper)


def partitions(parts: Sequence[Mapping[str, Summary]], whole: Mapping[str, int]) -> bool:
    """Whether the ranges cut from one site's keys split every site's rows: each row in
    exactly one range. A site that orders the keys otherwise (text under another
    collation, MariaDB's UUIDs) can see two cuts the other way round; every row is still in
    at least one range (the ranges start before the first key and end after the last), so
    the counts add up to more than the whole exactly when some row is in two."""
    return all(sum(p[site].rows for p in parts) == n for site, n in whole.items())


def narrow(
    sources: Mapping[str, Source],
    lower: Bound,
    upper: Bound,
    summaries: Mapping[str, Summary] | None = None,
    leaf_rows: int = LEAF_ROWS,
    fanout: int = FANOUT,
    ask: Ask = in_turn,
    depth: int = 0,
) -> dict[Key, Digests]:
    """The keys of (lower, upper] whose rows differ between the sources, each with every
    source's hash (gathered with `merge`: pass the result through `settled`). `summaries`:
    the sources' summaries of the range, if already read.

    A differing range with more than `leaf_rows` rows at some site is cut at the keys of
    the site that holds the most (every n/fanout-th of its rows), so each piece holds fewer
    of that site's rows than the range did, and fewer rows of all sites together: the
    recursion ends. Then each site lists its keys and hashes, and they are compared. A
    range whose pieces do not split some site's rows (`partitions`) is listed whole."""
    sums = summaries or ask(sources, lambda s: s.summary(lower, upper))
    if len(set(sums.values())) == 1:
        return {}
    most = max(sums, key=lambda site: sums[site].rows)
    n = sums[most].rows
    if n > leaf_rows and depth < MAX_DEPTH:
        every = max(1, -(-n // fanout))
        pieces = list(ranges(sources[most].bounds(lower, upper, every), lower, upper))
        parts = [ask(sources, summary_of(lo, hi)) for lo, hi in pieces]
        if partitions(parts, {site: s.rows for site, s in sums.items()}):
            out: dict[Key, Digests] = {}
            for (lo, hi), part in zip(pieces, parts, strict=True):
                merge(narrow(sources, lo, hi, part, leaf_rows, fanout, ask, depth + 1), out)
            return out
    return differing_keys(ask(sources, lambda s: s.digests(lower, upper)))


# how one range is compared once its summaries are known (None: not read yet)
CompareRange = Callable[[Bound, Bound, Mapping[str, Summary] | None], dict[Key, Digests]]


def compare_table(
    table: str,
    sources: Mapping[str, Source],
    chunk_rows: int,
    compare_range: CompareRange,
    ask: Ask = in_turn,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, int], dict[Key, Digests]]:
    """Each source's row count, and the keys whose rows differ with each source's hash.
    The chunks are cut from the first source's keys every `chunk_rows` rows; their
    summaries are read first (`progress(done, chunks)` after each), then each differing
    one is compared by `compare_range` (`narrow`, or a comparison through Python). When
    the chunks do not split some source's rows (it orders the keys otherwise: `partitions`),
    the table is compared as one range."""
    first = next(iter(sources.values()))
    pieces = list(ranges(first.bounds(None, None, chunk_rows)))
    totals: dict[str, int] = ask(sources, lambda s: s.count())
    parts: list[Mapping[str, Summary] | None] = []
    for n, (lo, hi) in enumerate(pieces, 1):
        parts.append(ask(sources, summary_of(lo, hi)))
        if progress:
            progress(n, len(pieces))
    if not partitions([p for p in parts if p is not None], totals):
        log.warning(
            "verify: table %s: the sites order its keys differently (text under other "
            "collations?): compared as one range, every differing key listed",
            table,
        )
        pieces, parts = [(None, None)], [None]
    found: dict[Key, Digests] = {}
    for (lo, hi), part in zip(pieces, parts, strict=True):
        merge(compare_range(lo, hi, part), found)
    return totals, settled(found)


def merge(found: Mapping[Key, Digests], into: dict[Key, Digests]) -> None:
    """Add the differing keys of one range to those of the others. A row is in exactly one
    range at each site, but two databases may order the same keys differently (text under
    different collations): a row may then be seen absent at a site in one range and
    present there in another. Its hashes are gathered from every range it was seen in."""
    for key, digests in found.items():
        have = into.setdefault(key, dict.fromkeys(digests))
        for site, digest in digests.items():
            if digest is not None:
                have[site] = digest


def settled(found: Mapping[Key, Digests]) -> dict[Key, Digests]:
    """The keys that still differ once their hashes were gathered from every range."""
    return {k: d for k, d in found.items() if len(set(d.values())) > 1}
