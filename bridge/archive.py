"""The archiver (archive site only): every event of every site into `bridge_archive`,
the golden source that replay reads. A redelivered event is stored once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge import codec
from bridge.config import Config
from bridge.decision import Outcome
from bridge.dialects.base import close_quietly
from bridge.errors import DatabaseError, one_line
from bridge.event import Event

ARCHIVED, ARCHIVE_DUPLICATE = "archived", "archive_duplicate"


class Archiver:
    def __init__(self, config: Config, dialect: Any, connect_now: bool = True) -> None:
        self.config = config
        self.dialect: Any = dialect
        self.conn: Any = None
        self.insert = dialect.render("archive_insert")
        self.waited: list[tuple[Event, Outcome]] = []  # never: nothing waits to be archived
        if connect_now:
            self.reconnect()

    def reconnect(self) -> None:
        close_quietly(self.conn)
        self.conn = self.dialect.connect(self.config.database_url)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def apply_batch(self, events: Sequence[Event]) -> list[Outcome]:
        """Store the events in one statement; a redelivered one (stored already, or twice in
        the batch) is an ARCHIVE_DUPLICATE."""
        if self.conn is None or self.conn.closed:
            self.reconnect()
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.execute(
                    self.insert,
                    {
                        "id": [e.id for e in events],
                        "ts": [e.timestamp for e in events],
                        "origin": [e.origin for e in events],
                        "type": [e.type for e in events],
                        "event": [codec.dumps(e.to_dict()) for e in events],
                    },
                )
                stored = {event_id for (event_id,) in cur.fetchall()}
        except self.dialect.errors.lost as exc:
            raise DatabaseError(
                f"database connection lost while archiving: {one_line(exc)}"
            ) from exc
        outcomes = []
        for e in events:
            outcomes.append(Outcome(ARCHIVED if e.id in stored else ARCHIVE_DUPLICATE))
            stored.discard(e.id)  # the same event twice in the batch: the second is a duplicate
        return outcomes
