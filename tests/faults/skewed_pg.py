"""A throw-away PostgreSQL server whose clock runs at a fixed offset (libfaketime).

Debian's PostgreSQL 15 binaries, run as user postgres, on a free port of 127.0.0.1, in a
temporary data directory; libfaketime is preloaded into the server only, so `now()` and
`clock_timestamp()` (what the capture triggers stamp changes with) run e.g. one hour ahead
while the rest of the machine keeps real time. Stopped by the pid started here, data
directory removed. Skips (not fails) when libfaketime cannot be installed or has no effect.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import wait_for

PG_BIN = Path(os.environ.get("BRIDGE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
LIBFAKETIME_GLOBS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
)
# The server's clock must be within this of the requested offset (it is checked, not timed).
OFFSET_TOLERANCE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class SkewedServer:
    """A running server: `url(db)` for a database on it, `offset` as measured at start."""

    port: int
    pid: int
    offset: dt.timedelta

    def url(self, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_db(self, db: str, ddl: str) -> str:
        """A fresh database with `ddl` run in it; returns its URL."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}"')
            conn.execute(f'CREATE DATABASE "{db}"')
        with psycopg.connect(self.url(db), autocommit=True) as conn:
            conn.execute(ddl)
        return self.url(db)


def _find_libfaketime() -> str | None:
    for pattern in LIBFAKETIME_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def ensure_libfaketime() -> str:
    """Path of libfaketime.so.1, installed with apt-get if missing (CI machines start
    fresh); skips the test with the reason when that is not possible."""
    lib = _find_libfaketime()
    if lib:
        return lib
    if os.geteuid() != 0:
        pytest.skip("libfaketime is not installed and this is not root: cannot apt-get it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "libfaketime"]
    out = ""
    for steps in ([install], [["apt-get", "update", "-qq"], install]):
        for cmd in steps:
            try:
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as exc:
                out = f"{' '.join(cmd)}: {exc}"
                break
            out = f"{' '.join(cmd)} exited {done.returncode}: {done.stdout}{done.stderr}"
            if done.returncode != 0:
                break
        lib = _find_libfaketime()
        if lib:
            return lib
    pytest.skip(f"libfaketime could not be installed with apt-get ({out.strip()[-500:]})")


def faketime_env(lib: str, offset: str) -> dict[str, str]:
    """Environment preloading libfaketime with a fixed offset of the wall clock only:
    monotonic clocks stay real so PostgreSQL's timeouts and latches behave."""
    return {
        **os.environ,
        "LD_PRELOAD": lib,
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def _check_faketime_shifts_a_process(lib: str, offset: str, expected: dt.timedelta) -> None:
    """`date` under libfaketime must be off by `expected`, or libfaketime does not work
    here and the test is skipped."""
    done = subprocess.run(
        ["date", "+%s"], env=faketime_env(lib, offset), capture_output=True, text=True, timeout=30
    )
    real = dt.datetime.now(dt.UTC).timestamp()
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        pytest.skip(f"libfaketime ({lib}) breaks a plain `date`: {done.stderr.strip()[-300:]}")
    shift = dt.timedelta(seconds=int(done.stdout) - real)
    if abs(shift - expected) > OFFSET_TOLERANCE:
        pytest.skip(f"libfaketime ({lib}) with FAKETIME={offset!r} shifted `date` by {shift}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown of the postmaster we started (by its pid), harder if it hangs."""
    for sig, grace in ((signal.SIGINT, 60), (signal.SIGQUIT, 15), (signal.SIGKILL, 15)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError as exc:
        return f"(no log: {exc})"


@contextlib.contextmanager
def skewed_postgres(offset: str, expected: dt.timedelta) -> Iterator[SkewedServer]:
    """Start a PostgreSQL server whose clock runs `offset` (libfaketime syntax, e.g. "+1h")
    from real time, check that `now()` there really is off by about `expected`, yield it,
    then stop it by its pid and remove its data directory."""
    for binary in ("initdb", "postgres"):
        if not (PG_BIN / binary).exists():
            pytest.skip(f"{PG_BIN / binary} not found: Debian's postgresql-15 is needed")
    lib = ensure_libfaketime()
    _check_faketime_shifts_a_process(lib, offset, expected)

    top = Path(tempfile.mkdtemp(prefix="bridge-skewed-pg-"))
    data, log = top / "data", top / "postgres.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        shutil.chown(top, "postgres", "postgres")
        as_postgres = {"user": "postgres", "group": "postgres", "extra_groups": []}
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=300,
            cwd=top,
            **as_postgres,  # type: ignore[arg-type]
        )
        port = _free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(top),  # its own socket directory, nothing in /var/run/postgresql
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "shared_buffers=32MB",
                    "-c",
                    "max_connections=40",
                    "-c",
                    "autovacuum=off",
                ],
                env=faketime_env(lib, offset),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=top,
                **as_postgres,  # type: ignore[arg-type]
            )

        def ready() -> bool:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(
                    f"skewed PostgreSQL exited {proc.returncode} at start:\n{_tail(log)}"
                )
            try:
                with psycopg.connect(
                    f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2
                ):
                    return True
            except psycopg.OperationalError:
                return False

        wait_for(ready, 90, f"skewed PostgreSQL on port {port} to accept connections", 0.2)
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres") as conn:
            db_now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        measured = db_now - dt.datetime.now(dt.UTC)
        if abs(measured - expected) > OFFSET_TOLERANCE:
            pytest.skip(
                f"libfaketime preloaded into postgres did not shift its clock by {expected} "
                f"(FAKETIME={offset!r}: now() is {measured} off real time)"
            )
        yield SkewedServer(port=port, pid=proc.pid, offset=measured)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(top, ignore_errors=True)
