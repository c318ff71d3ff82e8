"""What an acknowledgement message carries (docs/architecture.md, "Acknowledgements").

One message per applied consumer batch and emitter: what became of each of the emitter's
events in the batch at the sending site.

```json
{"version": 1, "origin": "PARIS", "site": "LONDON",
 "acks": [{"id": "0b6f…", "status": "applied"},
          {"id": "4c1e…", "status": "failed", "reason": "cannot apply: CheckViolation: …"}]}
```

`origin` is the site that emitted the events, `site` the one that received them;
`"archive": true` (topic mode, from the archive site's archiver) says they were stored in
the archive, recorded as site `<SITE>_HISTO` (only the archive site's are taken). The AMQP
`user_id` is the sender's broker user, which RabbitMQ checks against the connection's user:
a receiver takes `site` only from a message whose user_id is that site's broker user, as
the consumer takes an event's origin (bridge/consumer.py, validate).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pika

from bridge import codec
from bridge.broker import broker_user_of
from bridge.config import SITE_NAME
from bridge.errors import AckError

VERSION = 1
TYPE = "bridge.ack"  # the AMQP `type` of an acknowledgement message
APPLIED, DUPLICATE, SUPERSEDED, CONFLICT, FAILED, WAITING = (
    "applied",
    "duplicate",
    "superseded",
    "conflict",
    "failed",
    "waiting",
)
STATUSES = (APPLIED, DUPLICATE, SUPERSEDED, CONFLICT, FAILED, WAITING)
MAX_REASON = 500  # characters of a reason that travel (the rest is in the sender's logs)
MAX_ACKS = 10_000  # acks in one message: a consumer batch is at most 5,000 events
MAX_BYTES = 4 * 1024 * 1024
ARCHIVE_SUFFIX = "_HISTO"  # the archive of site X is destination X_HISTO (its queue's name)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Ack:
    event_id: str
    status: str
    reason: str = ""


@dataclass(frozen=True)
class AckBatch:
    origin: str  # the site that emitted the events
    site: str  # the site that says what became of them
    acks: tuple[Ack, ...]
    archive: bool = False  # from the site's archiver: stored in the archive

    @property
    def destination(self) -> str:
        """The destination the acks are about: the site, or its archive."""
        return f"{self.site}{ARCHIVE_SUFFIX}" if self.archive else self.site


def truncate(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


def encode(batch: AckBatch) -> bytes:
    acks: list[dict[str, str]] = []
    for a in batch.acks:
        item = {"id": a.event_id, "status": a.status}
        if a.reason:
            item["reason"] = truncate(a.reason)
        acks.append(item)
    body: dict[str, object] = {"version": VERSION, "origin": batch.origin, "site": batch.site}
    if batch.archive:
        body["archive"] = True
    body["acks"] = acks
    return codec.dumps(body).encode()


def properties(sender: str) -> pika.BasicProperties:
    """AMQP properties of an ack message sent by site `sender` (its broker user: RabbitMQ
    refuses the publish if that is not the connection's user)."""
    return pika.BasicProperties(
        message_id=str(uuid.uuid4()),
        type=TYPE,
        timestamp=int(dt.datetime.now(dt.UTC).timestamp()),
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        app_id="bridge",
        user_id=broker_user_of(sender),
    )


def decode(body: bytes, user: str | None) -> AckBatch:
    """An ack message, checked against the broker user RabbitMQ validated for its publish
    (`user`): it must be the sending site's. Raises AckError saying what is wrong."""
    if len(body) > MAX_BYTES:
        raise AckError(f"ack message of {len(body)} bytes exceeds {MAX_BYTES}")
    try:
        raw = codec.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise AckError(f"ack message is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise AckError("ack message is not a JSON object")
    if raw.get("version") != VERSION:
        raise AckError(f"ack message version {raw.get('version')!r} is not {VERSION}")
    origin, site = _site(raw, "origin"), _site(raw, "site")
    if not user:
        raise AckError("ack message has no user_id: its sender cannot be trusted")
    if user != broker_user_of(site):
        raise AckError(f"ack sender {site!r} does not match the publishing broker user {user!r}")
    archive = raw.get("archive", False)
    if not isinstance(archive, bool):
        raise AckError(f"ack message 'archive' {archive!r} is not true or false")
    items = raw.get("acks")
    if not isinstance(items, list) or not items or len(items) > MAX_ACKS:
        raise AckError(f"'acks' must be a list of 1 to {MAX_ACKS} acknowledgements")
    return AckBatch(origin, site, tuple(_ack(item) for item in items), archive)


def _site(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not SITE_NAME.match(value):
        raise AckError(f"ack message {key!r} {value!r} is not a site name")
    return value


def _ack(item: Any) -> Ack:
    if not isinstance(item, dict) or set(item) - {"id", "status", "reason"}:
        raise AckError(f"an acknowledgement is {{id, status[, reason]}}, got {item!r}")
    event_id, status, reason = item.get("id"), item.get("status"), item.get("reason", "")
    if not isinstance(event_id, str) or not _UUID.match(event_id):
        raise AckError(f"acknowledgement event id {event_id!r} is not a UUID")
    if status not in STATUSES:
        raise AckError(f"acknowledgement status {status!r} is not one of {', '.join(STATUSES)}")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise AckError(f"acknowledgement reason must be text of at most {MAX_REASON} characters")
    return Ack(event_id, status, reason)


def batches(origin_acks: dict[str, list[Ack]], site: str, archive: bool = False) -> list[AckBatch]:
    """One batch per emitter, in the order they were first met."""
    return [
        AckBatch(origin, site, tuple(acks), archive) for origin, acks in origin_acks.items() if acks
    ]
