"""What `bridge bootstrap` decides before it touches a database or the broker: which
dialects it copies between, and how its progress record reads back."""

from __future__ import annotations

import pytest

from bridge import bootstrap
from bridge.config import from_mapping
from bridge.errors import RefusedError

pytestmark = pytest.mark.unit

PG = "postgresql://bridge@127.0.0.1:1/none"


def config(url: str):
    return from_mapping(
        {
            "site": "ROME",
            "database_url": url,
            "amqp_url": "amqp://rome:x@127.0.0.1:1/",
            "sites": ["PARIS", "ROME"],
            "tables": {"orders": "lww"},
        }
    )


@pytest.mark.parametrize(
    ("new", "source", "named"),
    [
        ("mssql+pyodbc://sa:x@localhost/db", PG, "SQL Server as the new site"),
        ("oracle+oracledb://u:x@localhost/db", PG, "Oracle as the new site"),
        (PG, "mssql+pyodbc://sa:x@localhost/db", "SQL Server as the source site"),
        (PG, "oracle+oracledb://u:x@localhost/db", "Oracle as the source site"),
    ],
)
def test_unsupported_dialects_are_refused_before_anything_runs(new, source, named) -> None:
    with pytest.raises(RefusedError, match=named):
        bootstrap.bootstrap(config(new), "PARIS", source)


def test_the_source_cannot_be_the_site_itself() -> None:
    with pytest.raises(RefusedError, match="is this site"):
        bootstrap.bootstrap(config(PG), "ROME", PG)


def test_the_progress_record_reads_back() -> None:
    state = bootstrap.State("PARIS", done=["customers"], table="orders", after={"id": 41})
    state.copied = 4100
    again = bootstrap.State.from_json(state.to_json())
    assert again == state
    assert bootstrap.State.from_json({"source": "PARIS"}) == bootstrap.State("PARIS")
