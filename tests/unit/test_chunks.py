"""The narrowing of `bridge verify` (bridge/chunks.py) over sites held in memory: a site is
a sorted list of (key, hash), answering as the SQL templates do, and counting the
questions it was asked. The SQL side is tests/integration/test_verify_keys.py."""

from __future__ import annotations

import bisect
import json
import random

import pytest

from bridge import chunks
from bridge.chunks import Bound, Key, Summary
from bridge.verify import Comparison, KeyDiff

pytestmark = pytest.mark.unit


class Memory:
    """A site's table as (key, hash) in key order; `order` sorts its keys (a collation)."""

    def __init__(self, rows: dict[Key, int], order: object = None) -> None:
        self.sort = order or (lambda k: k)
        self.keys = sorted(rows, key=self.sort)  # type: ignore[arg-type]
        self.rows = rows
        self.asked = 0

    def _in(self, lower: Bound, upper: Bound) -> list[Key]:
        s = [self.sort(k) for k in self.keys]  # type: ignore[operator]
        lo = 0 if lower is None else bisect.bisect_right(s, self.sort(lower))  # type: ignore[operator]
        hi = len(s) if upper is None else bisect.bisect_right(s, self.sort(upper))  # type: ignore[operator]
        self.asked += 1
        return self.keys[lo:hi]

    def bounds(self, lower: Bound, upper: Bound, every: int) -> list[Key]:
        keys = self._in(lower, upper)
        return keys[every - 1 :: every]

    def count(self) -> int:
        return len(self.keys)

    def summary(self, lower: Bound, upper: Bound) -> Summary:
        keys = self._in(lower, upper)
        return Summary(len(keys), sum(self.rows[k] for k in keys) & ((1 << 64) - 1))

    def digests(self, lower: Bound, upper: Bound) -> dict[Key, int]:
        return {k: self.rows[k] for k in self._in(lower, upper)}


def table(n: int, start: int = 1) -> dict[Key, int]:
    return {(i,): hash(("row", i)) & 0xFFFFFFFF for i in range(start, start + n)}


def everything(sites: dict[str, Memory], chunk_rows: int) -> dict[Key, chunks.Digests]:
    """What verify does per table: chunks cut from the first site, each narrowed."""
    counts, found = chunks.compare_table(
        "t", sites, chunk_rows, lambda lo, hi, sums: chunks.narrow(sites, lo, hi, sums)
    )
    assert counts == {site: len(s.keys) for site, s in sites.items()}
    return found


def test_ranges_cover_every_key_once() -> None:
    assert list(chunks.ranges([])) == [(None, None)]
    assert list(chunks.ranges([(3,), (6,)])) == [(None, (3,)), ((3,), (6,)), ((6,), None)]
    # a sub-range whose last cut is its own upper end has no empty tail
    assert list(chunks.ranges([(2,), (4,)], (0,), (4,))) == [((0,), (2,)), ((2,), (4,))]


@pytest.mark.parametrize("chunk_rows", [1, 3, 100, 10_000])
def test_exactly_the_changed_absent_and_extra_keys(chunk_rows: int) -> None:
    base = table(2000)
    other = dict(base)
    other[(17,)] += 1
    del other[(1,)], other[(2000,)], other[(999,)]
    other[(0,)] = 5
    other[(-3,)] = 6
    other[(5000,)] = 7
    sites = {"A": Memory(base), "B": Memory(dict(base)), "C": Memory(other)}
    found = everything(sites, chunk_rows)
    assert set(found) == {(17,), (1,), (2000,), (999,), (0,), (-3,), (5000,)}
    assert found[(17,)] == {"A": base[(17,)], "B": base[(17,)], "C": base[(17,)] + 1}
    assert found[(1,)]["C"] is None and found[(0,)]["A"] is None


def test_equal_sites_are_asked_once_per_chunk() -> None:
    sites = {s: Memory(table(5000)) for s in "ABC"}
    assert everything(sites, 1000) == {}
    # one walk for the cuts at A, then one summary per chunk and site: five chunks and
    # the one past A's last key (where another site's extra rows would be)
    assert [s.asked for s in sites.values()] == [1 + 6, 6, 6]


def test_one_difference_in_a_large_chunk_costs_a_few_questions() -> None:
    base = table(100_000)
    other = dict(base)
    other[(54_321,)] ^= 1
    sites = {"A": Memory(base), "B": Memory(other)}
    found = everything(sites, 100_000)
    assert list(found) == [(54_321,)]
    # 100,000 rows -> 16 ranges of 6,250 -> 16 of 391, listed: a few dozen questions
    assert sites["B"].asked < 50, sites["B"].asked
    # and through ranges of at most 64 rows (more levels)
    for s in sites.values():
        s.asked = 0
    found = {}
    for lo, hi in chunks.ranges(sites["A"].bounds(None, None, 100_000)):
        found.update(chunks.narrow(sites, lo, hi, leaf_rows=64))
    assert list(found) == [(54_321,)]
    assert sites["B"].asked < 100, sites["B"].asked


def test_a_chunk_that_differs_everywhere_costs_a_few_dozen_questions() -> None:
    sites = {"A": Memory(table(10_000)), "B": Memory({})}
    assert len(everything(sites, 10_000)) == 10_000
    assert sites["B"].asked < 40, sites["B"].asked


def test_disjoint_sites_end() -> None:
    """Each site holds rows the other has none of: every piece is cut by whichever holds
    the most rows there, so the recursion ends with every row listed."""
    sites = {"A": Memory(table(1000, 1)), "B": Memory(table(1000, 1001))}
    found = everything(sites, 1000)
    assert len(found) == 2000


def test_another_order_of_the_same_keys_is_no_difference() -> None:
    """Two databases may order text keys differently: a key is then in one chunk at a site
    and in another at the next, seen absent twice; merged, it is the same row."""
    words = [f"{c}{n}" for n in range(300) for c in "aBcD"]
    rows = {(w,): hash(w) & 0xFFFF for w in words}
    sites = {
        "A": Memory(rows),
        "B": Memory(dict(rows), order=lambda k: tuple(str(v).lower() for v in k)),
    }
    assert everything(sites, 50) == {}
    changed = dict(rows)
    changed[("c7",)] += 1
    sites["B"] = Memory(changed, order=lambda k: tuple(str(v).lower() for v in k))
    assert list(everything(sites, 50)) == [("c7",)]


def test_random_differences_are_all_found() -> None:
    rng = random.Random(7)
    base = table(3000)
    for _ in range(5):
        other = dict(base)
        picked = rng.sample(sorted(base), 40)
        for k in picked[:20]:
            other[k] += 1
        for k in picked[20:]:
            del other[k]
        extra = {(rng.randint(-500, 4000) * 10 + 5,) for _ in range(20)}
        for k in extra:
            other[k] = 1
        sites = {"A": Memory(base), "B": Memory(other)}
        assert set(everything(sites, rng.choice([7, 64, 500, 5000]))) == set(picked) | extra


def test_states_and_json() -> None:
    d = KeyDiff("orders", {"id": 1}, {"PARIS": 5, "LONDON": None, "MADRID": 5})
    assert d.states() == {"PARIS": "same", "LONDON": "absent", "MADRID": "same"}
    d = KeyDiff("orders", {"id": 2}, {"PARIS": None, "LONDON": None, "MADRID": 9})
    assert d.states() == {"PARIS": "same", "LONDON": "same", "MADRID": "extra"}
    d = KeyDiff("orders", {"id": 3}, {"PARIS": 1, "LONDON": 2, "MADRID": 3})
    assert d.states() == {"PARIS": "same", "LONDON": "differs", "MADRID": "differs"}
    c = Comparison(
        sites=["PARIS", "LONDON", "MADRID"],
        rows={"orders": {"PARIS": 2, "LONDON": 1, "MADRID": 3}, "lines": {"PARIS": 0}},
        differences={"orders": [d], "lines": []},
    )
    assert not c.ok and c.differing_tables() == ["orders"]
    data = json.loads(json.dumps(c.to_json()))
    assert data["ok"] is False and data["tables"]["lines"]["ok"] is True
    assert data["tables"]["orders"]["differences"][0] == {
        "key": {"id": 3},
        "sites": {
            "PARIS": {"state": "same", "digest": "0000000000000001"},
            "LONDON": {"state": "differs", "digest": "0000000000000002"},
            "MADRID": {"state": "differs", "digest": "0000000000000003"},
        },
    }
