"""The no-silent-skip rule (tests/skips.py), proved on a real pytest run: a tiny test file
is run by pytest in a subprocess, with and without the rule switched on."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.skips import SWITCHES, enforced

pytestmark = pytest.mark.unit

TIMEOUT = 120

CASES = {
    "call": """
        import pytest

        def test_it():
            pytest.skip("no libfaketime here")
    """,
    "fixture": """
        import pytest

        @pytest.fixture
        def server():
            pytest.skip("no libfaketime here")

        def test_it(server):
            pass
    """,
    "skipif": """
        import pytest

        @pytest.mark.skipif(True, reason="no libfaketime here")
        def test_it():
            pass
    """,
    "module": """
        import pytest

        pytest.skip("no libfaketime here", allow_module_level=True)

        def test_it():
            pass
    """,
}

ALLOWED = """
    import pytest

    @pytest.mark.allowed_skip("SQL Server live tests need a Docker engine")
    def test_it():
        pytest.skip("no Docker engine here")
"""

ALLOWED_WITHOUT_REASON = """
    import pytest

    @pytest.mark.allowed_skip
    def test_it():
        pytest.skip("no Docker engine here")
"""


def run_pytest(tmp_path: Path, source: str, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest over one test file holding `source`, with only the plugin under test loaded
    and the rule's switches taken from `env` alone (not from this run's environment)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # keep the repository's config out
    (tmp_path / "test_tiny.py").write_text(textwrap.dedent(source))
    (tmp_path / "test_other.py").write_text("def test_runs():\n    assert 1 + 1 == 2\n")
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in SWITCHES and k != "BRIDGE_UPDATE_GOLDEN" and not k.startswith("PYTEST_")
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.skips", "-p", "no:cacheprovider"]
        + ["-rA", "test_tiny.py", "test_other.py"],
        cwd=tmp_path,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.mark.parametrize("where", sorted(CASES))
def test_a_skip_passes_the_run_outside_ci(tmp_path: Path, where: str) -> None:
    done = run_pytest(tmp_path, CASES[where])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped" in done.stdout and "no libfaketime here" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("where", "switch"),
    [pytest.param(where, {"CI": "true"}, id=f"{where}-CI") for where in sorted(CASES)]
    # what scripts/test sets
    + [pytest.param("call", {"BRIDGE_TEST_NO_SKIP": "1"}, id="call-BRIDGE_TEST_NO_SKIP")],
)
def test_a_skip_fails_the_run_under_ci_with_its_reason(
    tmp_path: Path, where: str, switch: dict[str, str]
) -> None:
    done = run_pytest(tmp_path, CASES[where], **switch)
    # 1: a test failed; 2: collection failed (the module-level skip)
    assert done.returncode in (1, 2), done.stdout + done.stderr
    assert "not allowed under CI" in done.stdout, done.stdout
    assert "no libfaketime here" in done.stdout, done.stdout  # the skip's own reason
    assert " skipped" not in done.stdout.splitlines()[-1], done.stdout


def test_an_allowed_skip_still_skips_under_ci(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, ALLOWED, CI="true")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 1 skipped" in done.stdout, done.stdout
    assert "no Docker engine here" in done.stdout, done.stdout


def test_an_allowed_skip_needs_its_reason(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, ALLOWED_WITHOUT_REASON, CI="true")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "needs the documented reason" in done.stdout, done.stdout


def test_golden_files_are_never_regenerated_under_ci(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, ALLOWED, CI="true", BRIDGE_UPDATE_GOLDEN="1")
    assert done.returncode != 0, done.stdout + done.stderr
    assert "BRIDGE_UPDATE_GOLDEN is set under CI" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"CI": ""}, False),
        ({"CI": "false"}, False),
        ({"BRIDGE_TEST_NO_SKIP": "0"}, False),
        ({"CI": "true"}, True),
        ({"CI": "1"}, True),
        ({"BRIDGE_TEST_NO_SKIP": "1"}, True),
    ],
)
def test_which_environments_switch_the_rule_on(environ: dict[str, str], expected: bool) -> None:
    assert enforced(environ) is expected
