"""Counters of one bridge process, shared by its threads and printed by `bridge run`."""

from __future__ import annotations

import threading
from collections import Counter


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in sorted(self.snapshot().items())) or "idle"
