"""What `bridge verify` prints: per table and site the row count and OK or the keys that
differ there, and progress lines on stderr at most once a second."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from bridge.verify import SAME, Comparison, KeyDiff

SHOWN_KEYS = 20  # keys listed per site; the rest are counted


def key_text(key: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in key.items())


def lines(result: Comparison) -> Iterator[str]:
    for table, counts in result.rows.items():
        diffs = result.differences.get(table, [])
        per_site: dict[str, list[tuple[KeyDiff, str]]] = {s: [] for s in result.sites}
        for d in diffs:
            for site, state in d.states().items():
                if state != SAME:
                    per_site[site].append((d, state))
        for site in result.sites:
            mine = per_site[site]
            if not diffs:
                verdict = "OK"
            elif mine:
                verdict = f"{len(mine)} keys differ"
            else:
                verdict = "holds the rows most sites hold"
            yield f"{table:16} {site:10} rows={counts[site]:<10} {verdict}"
            for d, state in mine[:SHOWN_KEYS]:
                yield f"    {key_text(d.key):40} {state}"
            if len(mine) > SHOWN_KEYS:
                yield f"    ... and {len(mine) - SHOWN_KEYS} more (--json lists them all)"


class Throttled:
    """A progress callback that passes on at most one line a second: a long table shows
    where it is, a short one stays quiet."""

    def __init__(self, write: Callable[[str], None], every: float = 1.0) -> None:
        self.write = write
        self.every = every
        self.last = 0.0

    def __call__(self, line: str) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.write(line)
