"""What travels in one AMQP message: one event, or a batch of events of one transaction.

Two formats, told apart by the body's `version` field (docs/architecture.md, "Wire format"):

- version 1 (no `version` field): the seed's event, its five fields at the top level. A
  change alone in its transaction, or one that does not fit in a batch, travels so; every
  bridge reads it.
- version 2: `{"version": 2, "origin": "PARIS", "events": [event, ...]}`, the events of
  one source transaction (consecutive outbox rows of one transaction), each with its own
  five fields as version 1 has them, in the order they were captured. Bounded by
  `message_events` events and `message_bytes` bytes (config).

Every event keeps its own id: idempotence (bridge_inbox), echo and outbox deletion, conflicts
and dead letters are per event. A receiver applies a message's events in one transaction,
so the changes of a source transaction that share a message become visible together.
A bridge that reads version 2 reads version 1; a message of a version newer than this
bridge reads is refused with a reason that says to upgrade (it goes to the dead-letter
queue, and `bridge dlq retry` applies it after the upgrade).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from bridge import codec
from bridge import event as events
from bridge.errors import EventError
from bridge.event import Event

T = TypeVar("T")

VERSION = 2  # the newest format this bridge reads and writes
BATCH_TYPE = "bridge.batch"  # the AMQP `type` of a version 2 message
ENVELOPE_BYTES = 64  # what the envelope adds to its events' bodies, at most


def decode(body: bytes) -> list[Event]:
    """The events of a message body, of either version. Raises EventError saying what is
    wrong (the whole message is then refused)."""
    if len(body) > events.MAX_MESSAGE_BYTES:
        raise EventError(f"message of {len(body)} bytes exceeds {events.MAX_MESSAGE_BYTES}")
    try:
        raw = codec.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise EventError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict) or "version" not in raw:
        return [events.from_dict(raw)]
    return _batch(raw)


def _batch(raw: dict[str, Any]) -> list[Event]:
    version = raw["version"]
    if version == 1:
        raise EventError("version 1 messages carry no version field")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise EventError(f"version {version!r} is not a message format version")
    if version > VERSION:
        raise EventError(
            f"message format version {version} is newer than this bridge reads (1 to "
            f"{VERSION}): upgrade bridge at this site, then run bridge dlq retry"
        )
    origin, items = raw.get("origin"), raw.get("events")
    if not isinstance(origin, str) or not origin:
        raise EventError("a version 2 message needs its origin (a non-empty string)")
    if not isinstance(items, list) or not items:
        raise EventError("a version 2 message needs a non-empty list of events")
    out: list[Event] = []
    for n, item in enumerate(items):
        try:
            e = events.from_dict(item)
        except EventError as exc:
            raise EventError(f"event {n} of the batch: {exc}") from None
        if e.origin != origin:
            raise EventError(
                f"event {n} of the batch has origin {e.origin!r}, the message {origin!r}"
            )
        out.append(e)
    if len({e.id for e in out}) != len(out):
        raise EventError("the batch holds an event id twice")
    return out


def encode(origin: str, bodies: Sequence[bytes]) -> bytes:
    """The body of a message carrying events already encoded (event.encode): the event
    itself for one, a version 2 batch for several."""
    if len(bodies) == 1:
        return bodies[0]
    head = codec.dumps({"version": VERSION, "origin": origin})
    return b"".join((head[:-1].encode(), b',"events":[', b",".join(bodies), b"]}"))


def encode_events(batch: Sequence[Event]) -> bytes:
    """The body of a message carrying these events (all of one origin)."""
    return encode(batch[0].origin, [e.encode() for e in batch])


def group(
    items: Iterable[T],
    tx: Callable[[T], Any],
    size: Callable[[T], int],
    max_events: int,
    max_bytes: int,
) -> Iterator[list[T]]:
    """Consecutive items cut into messages: items of one transaction (`tx` equal, not
    None) together, at most `max_events` of them and `max_bytes` of bodies (`size`); one
    item larger than that goes alone."""
    current: list[T] = []
    current_tx: Any = None
    total = 0
    for item in items:
        item_tx, item_size = tx(item), size(item) + 1
        if current and (
            item_tx is None
            or item_tx != current_tx
            or len(current) >= max_events
            or total + item_size + ENVELOPE_BYTES > max_bytes
        ):
            yield current
            current, total = [], 0
        current.append(item)
        current_tx = item_tx
        total += item_size
    if current:
        yield current


def log_context(body: bytes, message_id: object) -> str:
    """The context tokens of a log line about one whole message: `event=<id> table=<its
    tables>` for a valid one (a batch's id is its first event's; its tables joined by ','),
    `message=<id>` for one that is not (its tables are unknown)."""
    try:
        tables = sorted({e.table for e in decode(body)})
    except EventError:
        return f"message={message_id}"
    return f"event={message_id} table={','.join(tables)}"
