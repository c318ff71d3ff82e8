"""What `bridge run`'s metrics and health check read from the site database: the outbox
backlog (the `status` template with `backlog`: the outbox and the waiting events, never a
count of the inbox or archive) and the capture triggers' drift (bridge/install.py), on a
connection of their own, each kept a while so that scrapes and probes cost the database
one small query every few seconds at most.

A failed read is counted, logged, and leaves no value (never a stale one): the connection
is opened again at the next read. Nothing here raises into the bridge."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from bridge import install, status
from bridge.config import Config
from bridge.dialects.base import close_quietly
from bridge.errors import BridgeError, one_line

log = logging.getLogger(__name__)

STATUS_TTL = 5.0  # seconds a status read serves scrapes and probes
DRIFT_TTL = 60.0  # seconds a drift read serves (it introspects every synced table)


class Probe:
    def __init__(
        self,
        config: Config,
        dialect: Any,
        status_ttl: float = STATUS_TTL,
        drift_ttl: float = DRIFT_TTL,
    ) -> None:
        self.config = config
        self.dialect = dialect
        self.status_ttl = status_ttl
        self.drift_ttl = drift_ttl
        self.conn: Any = None
        self.errors = 0  # failed reads
        self.error: str | None = None  # why the last read failed; None: it answered
        self.answered_at: float | None = None  # monotonic time of the last read that worked
        self._lock = threading.Lock()
        self._status: status.Backlog | None = None
        self._status_at = float("-inf")
        self._drift: dict[str, bool] | None = None
        self._drift_at = float("-inf")

    def status(self) -> status.Backlog | None:
        """The site's backlog, read at most every status_ttl; None if the read failed."""
        self._refresh()
        return self._status

    def drift(self) -> dict[str, bool] | None:
        """Per synced table: True if its capture trigger is missing or stale."""
        self._refresh()
        return self._drift

    def _refresh(self) -> None:
        # a read under way in another thread (a scrape beside a probe): take what is kept
        if not self._lock.acquire(blocking=False):
            return
        try:
            now = time.monotonic()
            if now - self._status_at >= self.status_ttl:
                self._status_at = now
                self._status = self._read(
                    lambda conn: status.read_backlog(self.dialect, conn), True
                )
            if now - self._drift_at >= self.drift_ttl:
                self._drift_at = now
                self._drift = self._read(self._read_drift, False)
        finally:
            self._lock.release()

    def _read_drift(self, conn: Any) -> dict[str, bool]:
        names = [t.name for t in self.config.tables]
        stale = install.drift(self.dialect, conn, names)
        return {name: name in stale for name in names}

    def _read(self, read: Any, answers: bool) -> Any:
        """`read` on the connection; None if it failed. `answers`: the read says whether
        the database answers (the status's; a drift read may fail on a table alone)."""
        try:
            if self.conn is None or self.conn.closed:
                self.conn = self.dialect.connect(self.config.database_url)
            value = read(self.conn)
        except (BridgeError, *self.dialect.errors.any) as exc:
            self.errors += 1
            reason = one_line(exc)
            if answers:
                self.error = reason
            log.warning("site=%s metrics: database read failed: %s", self.config.site, reason)
            close_quietly(self.conn)
            self.conn = None
            return None
        if answers:
            self.error = None
            self.answered_at = time.monotonic()
        return value

    def close(self) -> None:
        with self._lock:
            close_quietly(self.conn)
            self.conn = None
