"""What a received change is decided on and what became of it: shared by the applier
(bridge/apply.py), its set-based path (bridge/bulk.py) and the consumer."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bridge import codec

APPLIED, DUPLICATE, SUPERSEDED, CONFLICT, ECHO, REJECTED, WAITING = (
    "applied",
    "duplicate",
    "superseded",
    "conflict",
    "echo",
    "rejected",
    "waiting",
)
Version = tuple[dt.datetime, str]


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str = ""
    # a CONFLICT because the row cannot be written here at all (a local constraint, a value
    # out of range), not because it lost to another version: acknowledged as `failed`
    unwritable: bool = False


@dataclass(frozen=True)
class RowState:
    """What a change is decided on: the local row (None if absent), the row's last applied
    version (or echoed local one) and the newest local change of the row still in the
    outbox."""

    local_row: dict[str, Any] | None
    version: Version | None  # bridge_row_version's
    pending_ts: dt.datetime | None

    @classmethod
    def of(
        cls,
        local_row: dict[str, Any] | str | bytes | None,
        version_ts: dt.datetime | None,
        version_origin: str | None,
        pending_ts: dt.datetime | None,
    ) -> RowState:
        """From the columns of _row_state.sql.j2 (the local row as JSON text where the
        driver does not parse it)."""
        row: dict[str, Any] | None = (
            codec.loads(local_row) if isinstance(local_row, str | bytes) else local_row
        )
        version = (version_ts, version_origin) if version_ts and version_origin else None
        return cls(row, version, pending_ts)


@dataclass(frozen=True)
class Verdict:
    """What is to become of a change (Applier._judge)."""

    status: str  # APPLIED, SUPERSEDED or CONFLICT
    reason: str  # why it lost (CONFLICT)
    known: Version | None  # the newest version it was compared with
    pending: bool  # `known` is a local change still in the outbox
