"""A throw-away PostgreSQL server whose clock runs at a fixed offset (libfaketime).

Debian's binaries of the same major version as the server the other sites use
(/usr/lib/postgresql/<major>/bin), run as user postgres, on a free port of 127.0.0.1, in a
temporary data directory; libfaketime is preloaded into the server only, so `now()` and
`clock_timestamp()` (what the capture triggers stamp changes with) run e.g. one hour ahead
while the rest of the machine keeps real time. Stopped by the pid started here, data
directory removed.

scripts/services installs the binaries and libfaketime. When either is missing, or the
clock does not really move, the test fails with the reason: it never skips.
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

from tests.conftest import pg_url, wait_for

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


def server_major() -> int:
    """Major version of the PostgreSQL server the other sites of the test use."""
    with psycopg.connect(pg_url("postgres")) as conn:
        num = conn.execute("SHOW server_version_num").fetchone()[0]  # type: ignore[index]
    return int(num) // 10000


def pg_bin() -> Path:
    """The directory of initdb and postgres: BRIDGE_TEST_PG_BIN, or Debian's directory for
    the major version of the running server; fails the test if they are not there."""
    if os.environ.get("BRIDGE_TEST_PG_BIN"):
        where = Path(os.environ["BRIDGE_TEST_PG_BIN"])
        hint = "BRIDGE_TEST_PG_BIN must name the directory of initdb and postgres"
    else:
        major = server_major()
        where = Path(f"/usr/lib/postgresql/{major}/bin")
        hint = (
            f"the server runs PostgreSQL {major}, whose server binaries come with Debian's "
            f"postgresql-{major}: scripts/services installs it"
        )
    missing = [str(where / b) for b in ("initdb", "postgres") if not (where / b).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: {hint}", pytrace=False)
    return where


def find_libfaketime() -> str:
    """Path of libfaketime.so.1; fails the test if it is not installed."""
    for pattern in LIBFAKETIME_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    pytest.fail(
        f"libfaketime is not installed (looked for {', '.join(LIBFAKETIME_GLOBS)}): "
        "scripts/services installs it (apt-get install libfaketime)",
        pytrace=False,
    )


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
    here and the test fails."""
    done = subprocess.run(
        ["date", "+%s"], env=faketime_env(lib, offset), capture_output=True, text=True, timeout=30
    )
    real = dt.datetime.now(dt.UTC).timestamp()
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        pytest.fail(
            f"libfaketime ({lib}) breaks a plain `date`: {done.stderr.strip()[-300:]}",
            pytrace=False,
        )
    shift = dt.timedelta(seconds=int(done.stdout) - real)
    if abs(shift - expected) > OFFSET_TOLERANCE:
        pytest.fail(
            f"libfaketime ({lib}) with FAKETIME={offset!r} shifted `date` by {shift}, "
            f"not {expected}",
            pytrace=False,
        )


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
    bin_dir = pg_bin()
    lib = find_libfaketime()
    _check_faketime_shifts_a_process(lib, offset, expected)

    top = Path(tempfile.mkdtemp(prefix="bridge-skewed-pg-"))
    data, log = top / "data", top / "postgres.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        shutil.chown(top, "postgres", "postgres")
        as_postgres = {"user": "postgres", "group": "postgres", "extra_groups": []}
        subprocess.run(
            [
                str(bin_dir / "initdb"),
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
                    str(bin_dir / "postgres"),
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
            pytest.fail(
                f"libfaketime preloaded into postgres did not shift its clock by {expected} "
                f"(FAKETIME={offset!r}: now() is {measured} off real time)",
                pytrace=False,
            )
        yield SkewedServer(port=port, pid=proc.pid, offset=measured)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(top, ignore_errors=True)
