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

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

Key = tuple[object, ...]
Bound = Key | None
Digests = dict[str, int | None]  # per site; None: the row is absent there

FANOUT = 16  # sub-ranges a differing range is cut into
LEAF_ROWS = 64  # a differing range with at most this many rows at every site is listed
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
    """The keys of (lower, upper] whose rows differ between the sources. `summaries`: the
    sources' summaries of the range, if already read.

    A differing range with more than `leaf_rows` rows at some site is cut at the keys of
    the site that holds the most (every n/fanout-th of its rows), so each piece holds fewer
    of that site's rows than the range did, and fewer rows of all sites together: the
    recursion ends. Then each site lists its keys and hashes, and they are compared."""
    sums = summaries or ask(sources, lambda s: s.summary(lower, upper))
    if len(set(sums.values())) == 1:
        return {}
    most = max(sums, key=lambda site: sums[site].rows)
    n = sums[most].rows
    if n <= leaf_rows or depth >= MAX_DEPTH:
        return differing_keys(ask(sources, lambda s: s.digests(lower, upper)))
    every = max(1, -(-n // fanout))
    cuts = sources[most].bounds(lower, upper, every)
    out: dict[Key, Digests] = {}
    for lo, hi in ranges(cuts, lower, upper):
        out.update(narrow(sources, lo, hi, None, leaf_rows, fanout, ask, depth + 1))
    return out


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
