"""Make a local application's transaction and bridge's apply touch the same rows at the same
moment, on separate connections of a real PostgreSQL, in a chosen order:

- `apply_while_writing`: the application's transaction has run its statements (it holds
  its row locks, its outbox rows are written, it has not committed) when the applier starts;
  it commits once the applier waits for one of its locks (or has finished without waiting);
- `write_while_applying`: the applier has run a batch's statements (it holds the rows, its
  transaction is open) when the application's statements start; the applier commits once
  the application waits for one of its locks (or has finished).

Each returns the applier's outcomes, whether the second party really waited for the first
one's locks (so that a test can tell a race that happened from one that did not), and how
far the second party had got when the first committed: what ran before that saw nothing of
the first, what ran after saw all of it. An application statement that fails because of the
apply (a key the apply inserted meanwhile) is returned too, its transaction rolled back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from bridge import failpoints
from bridge.apply import Applier, Outcome
from bridge.event import Event
from tests.conftest import wait_for

TIMEOUT = 30.0


@dataclass(frozen=True)
class Race:
    outcomes: list[Outcome]
    waited: bool  # the second party waited for a lock of the first
    # how many of the second party's steps had finished when the first committed: events
    # applied (application first), or application statements run (apply first)
    before: int
    # apply first: the outbox's last seq as the application's transaction saw it after
    # each of its statements (which outbox rows each statement wrote)
    marks: tuple[int, ...] = ()
    writer_error: psycopg.Error | None = None  # the application's transaction failed


class ObservedApplier(Applier):
    """The real Applier, counting the events of the current batch it has finished: one by
    one, and the events of a set-based run once its statements ran (before that, none of
    them is decided: each is decided on a state read after any lock the run waited for)."""

    finished = 0

    def apply_batch(self, events: Sequence[Event]) -> list[Outcome]:
        self.finished = 0
        return super().apply_batch(events)

    def _apply_one(self, cur: Any, event: Event) -> Outcome:
        outcome = super()._apply_one(cur, event)
        self.finished += 1
        return outcome

    def _finished(self, count: int) -> None:  # the events of a set-based run (bridge/bulk.py)
        self.finished += count


class _Thread(threading.Thread):
    """A thread that keeps its target's result or exception for `result()`."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._target_fn = target
        self._value: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._value = self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self._error = exc

    def result(self) -> Any:
        self.join(TIMEOUT)
        assert not self.is_alive(), f"still running after {TIMEOUT}s"
        if self._error is not None:
            raise self._error
        return self._value


def waiting_for_lock(monitor: psycopg.Connection[Any], pid: int) -> bool:
    row = monitor.execute(
        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return bool(row and row[0])


def _second_waits(monitor: psycopg.Connection[Any], pid: int, thread: _Thread) -> bool:
    """Wait until the second party waits for a lock (True) or has finished (False)."""
    state = wait_for(
        lambda: (
            ("done" if not thread.is_alive() else None)
            or ("waiting" if waiting_for_lock(monitor, pid) else None)
        ),
        TIMEOUT,
        "the second transaction to wait for a lock or finish",
        interval=0.005,
    )
    return bool(state == "waiting")


def apply_while_writing(
    monitor: psycopg.Connection[Any],
    writer: psycopg.Connection[Any],
    applier: ObservedApplier,
    events: Sequence[Event],
) -> Race:
    """`writer` is in a transaction whose statements ran; apply `events` meanwhile, then
    commit the writer."""
    assert writer.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    applying = _Thread(lambda: applier.apply_batch(events))
    applying.start()
    waited = _second_waits(monitor, applier.conn.info.backend_pid, applying)
    before = applier.finished  # the applier waits (or is done): nothing finishes now
    writer.commit()
    return Race(applying.result(), waited, before)


def write_while_applying(
    monitor: psycopg.Connection[Any],
    writer: psycopg.Connection[Any],
    statements: Sequence[tuple[str, Sequence[Any]]],
    applier: ObservedApplier,
    events: Sequence[Event],
) -> Race:
    """Apply `events`, holding the apply transaction open once its statements ran while the
    writer runs `statements` in one transaction and commits."""
    ran, release = threading.Event(), threading.Event()

    def hold() -> None:
        ran.set()
        assert release.wait(TIMEOUT), "never released"

    marks: list[int] = []

    def write() -> psycopg.Error | None:
        try:
            with writer.transaction():
                for text, params in statements:
                    writer.execute(text, params)
                    row = writer.execute("SELECT coalesce(max(seq), 0) FROM bridge_outbox")
                    marks.append(row.fetchone()[0])  # type: ignore[index]
        except (psycopg.errors.UniqueViolation, psycopg.errors.ExclusionViolation) as exc:
            return exc
        return None

    with failpoints.hooked("apply.statements", hold):
        applying = _Thread(lambda: applier.apply_batch(events))
        applying.start()
        assert ran.wait(TIMEOUT), "the applier never ran its statements"
        writing = _Thread(write)
        writing.start()
        try:
            waited = _second_waits(monitor, writer.info.backend_pid, writing)
            before = len(marks)  # the writer waits (or is done): no statement ends now
        finally:
            release.set()
        outcomes: list[Outcome] = applying.result()
    error = writing.result()
    return Race(outcomes, waited, before, tuple(marks), error)
