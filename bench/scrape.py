"""A hard Prometheus for the benchmarks: a thread that GETs every bridge's /metrics once per
`interval` (1 s) for as long as it runs, counting scrapes, failures and their times.

A scrape fails when it does not answer 200 within 5 s with the text format of a Bridge's
registry (a body without `bridge_events_published_total`). Scraping is not paced against
the bridges: a slow answer delays the next one, as a Prometheus with a 1 s interval would
see it time out.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from bench.common import percentile

TIMEOUT_S = 5.0
MARKER = b"bridge_events_published_total"


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """n ports nobody listens on now (bound together, so they differ, then released)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]


@dataclass
class Site:
    scrapes: int = 0
    failures: int = 0
    ms: list[float] = field(default_factory=list)
    bytes: int = 0
    last_error: str = ""


@dataclass
class Scraper:
    addresses: dict[str, str]  # site -> host:port of its metrics_address
    interval: float = 1.0
    sites: dict[str, Site] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    started_at: float = 0.0
    seconds: float = 0.0

    def start(self) -> None:
        self.sites = {s: Site() for s in self.addresses}
        self.started_at = time.monotonic()
        self.thread = threading.Thread(target=self._run, name="bench-scraper", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(2 * TIMEOUT_S * max(1, len(self.addresses)))
            self.seconds = time.monotonic() - self.started_at

    def _run(self) -> None:
        due = time.monotonic()
        while not self.stopping.wait(max(0.0, due - time.monotonic())):
            for site, address in self.addresses.items():
                self._scrape(self.sites[site], address)
            due = max(due + self.interval, time.monotonic())

    def _scrape(self, site: Site, address: str) -> None:
        site.scrapes += 1
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=TIMEOUT_S) as r:
                body = r.read()
                status = r.status
        except (OSError, urllib.error.URLError) as exc:
            site.failures += 1
            site.last_error = repr(exc)
            return
        site.ms.append((time.perf_counter() - t0) * 1000)
        site.bytes = len(body)
        if status != 200 or MARKER not in body:
            site.failures += 1
            site.last_error = f"HTTP {status}, {len(body)} bytes without {MARKER.decode()}"

    def summary(self) -> dict[str, Any]:
        per_site = {
            name: {
                "address": self.addresses[name],
                "scrapes": s.scrapes,
                "failures": s.failures,
                "p50_ms": round(percentile(s.ms, 50), 2),
                "max_ms": round(max(s.ms), 2) if s.ms else float("nan"),
                "body_bytes": s.bytes,
                "last_error": s.last_error,
            }
            for name, s in self.sites.items()
        }
        return {
            "interval_s": self.interval,
            "seconds": round(self.seconds, 1),
            "scrapes": sum(s.scrapes for s in self.sites.values()),
            "failures": sum(s.failures for s in self.sites.values()),
            "per_site": per_site,
        }
