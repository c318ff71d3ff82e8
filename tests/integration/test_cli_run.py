"""`bridge run` as a real process: it syncs, and SIGTERM finishes the batch and exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.conftest import db_of, env_of, rows, sql, wait_for

pytestmark = pytest.mark.integration


def test_bridge_run_syncs_and_exits_0_on_sigterm(sites, tmp_path):
    procs = {}
    logs = {}
    try:
        for name in ("PARIS", "LONDON"):
            logs[name] = open(tmp_path / f"{name}.log", "w+")  # noqa: SIM115 - closed below
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run"],
                env=env_of(sites[name]),
                stdout=logs[name],
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )

        def ready(name: str) -> bool:
            text = (tmp_path / f"{name}.log").read_text()
            return "dispatcher ready" in text and "consuming SITE_" in text

        wait_for(lambda: all(ready(n) for n in procs), 60, "both bridges ready")
        sql(db_of(sites["PARIS"]), "INSERT INTO orders (id, customer) VALUES (1, 'p')")
        sql(db_of(sites["LONDON"]), "INSERT INTO orders (id, customer) VALUES (2, 'l')")
        wait_for(
            lambda: len(rows(sites["PARIS"])) == 2 and len(rows(sites["LONDON"])) == 2,
            60,
            "rows exchanged by the two processes",
        )
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for name, p in procs.items():
            assert p.wait(timeout=60) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
        text = (tmp_path / "PARIS.log").read_text()
        assert "SIGTERM received: finishing the batch in hand" in text
        assert "-secret" not in text  # no credentials in the logs
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in logs.values():
            f.close()
