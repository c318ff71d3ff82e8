"""Who used the CPU during a run: per-process user+system time from /proc, grouped.

The end-to-end benchmark takes a snapshot before and after each throughput run and
reports CPU seconds per group (bridge processes, their PostgreSQL backends, the writer's
backend, the RabbitMQ nodes, HAProxy, other PostgreSQL processes, this process, anything
else on the machine) and per 1000 events: on a 2-core machine that shows what saturates.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import sql

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    pid: int
    comm: str
    cmdline: str
    ticks: int  # user + system time of all its threads
    started: int  # start time since boot: tells a reused pid apart


def processes() -> dict[int, Proc]:
    out: dict[int, Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process is gone
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry.name)] = Proc(
            int(entry.name), comm, cmdline, int(fields[11]) + int(fields[12]), int(fields[19])
        )
    return out


def machine_busy_ticks() -> int:
    """Busy time of all CPUs since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def pg_backends() -> dict[int, tuple[str, str]]:
    """pid -> (database, application_name) of every PostgreSQL client backend."""
    rows = sql(
        "postgres",
        "SELECT pid, coalesce(datname, ''), coalesce(application_name, '') FROM pg_stat_activity",
    )
    return {int(pid): (str(db), str(app)) for pid, db, app in rows}


@dataclass
class Snapshot:
    procs: dict[int, Proc]
    backends: dict[int, tuple[str, str]]
    busy_ticks: int


def snapshot() -> Snapshot:
    return Snapshot(processes(), pg_backends(), machine_busy_ticks())


def usage(
    before: Snapshot,
    after: Snapshot,
    group: Callable[[Proc, tuple[str, str] | None], str],
    wall: float,
    events: int,
) -> dict[str, Any]:
    """CPU seconds per group between two snapshots (processes that started in between count
    from zero; those that ended in between are missed)."""
    seconds: dict[str, float] = {}
    backends = {**before.backends, **after.backends}
    for pid, proc in after.procs.items():
        start = before.procs.get(pid)
        ticks = proc.ticks - (start.ticks if start and start.started == proc.started else 0)
        if ticks <= 0:
            continue
        g = group(proc, backends.get(pid))
        seconds[g] = seconds.get(g, 0.0) + ticks / TICKS
    capacity = (os.cpu_count() or 1) * wall
    busy = (after.busy_ticks - before.busy_ticks) / TICKS
    return {
        "wall_s": round(wall, 3),
        "cpu_capacity_s": round(capacity, 3),
        "machine_busy_s": round(busy, 3),  # /proc/stat: what the groups should add up to
        "machine_busy_share": round(busy / capacity, 4),
        "groups": {
            g: {
                "cpu_s": round(s, 3),
                "share_of_machine": round(s / capacity, 4),
                "ms_per_1k_events": round(s * 1e6 / events, 1) if events else None,
            }
            for g, s in sorted(seconds.items(), key=lambda kv: -kv[1])
        },
    }
