"""Scheduled purge (default: older than 90 days) of the archive, the inbox and tombstones."""

from __future__ import annotations

import logging
import threading
from typing import Any

from bridge.config import Config
from bridge.errors import one_line

log = logging.getLogger(__name__)


def cleanup(config: Config, dialect: Any, older_than_days: int | None = None) -> int:
    """Delete what is older than the retention; returns the number of rows deleted."""
    days = older_than_days if older_than_days is not None else config.retention_days
    deleted = 0
    conn = dialect.connect(config.database_url)
    try:
        with conn.transaction(), conn.cursor() as cur:
            for stmt in dialect.statements("cleanup"):
                cur.execute(stmt, {"days": days})
                deleted += max(cur.rowcount, 0)
    finally:
        conn.close()
    log.info("site=%s cleanup: %d row(s) older than %d days deleted", config.site, deleted, days)
    return deleted


def schedule(config: Config, dialect: Any, stop: threading.Event) -> None:
    """Run `cleanup` every `cleanup_interval` seconds until stop is set (a thread target)."""
    while not stop.wait(config.cleanup_interval):
        try:
            cleanup(config, dialect)
        except Exception as exc:  # noqa: BLE001 - keep the schedule alive, say why it failed
            log.warning("site=%s scheduled cleanup failed: %s", config.site, one_line(exc))
