"""The SQL Server dialect on a real server, where one exists: BRIDGE_TEST_MSSQL_URL names
it (a SQLAlchemy URL, mssql+pyodbc://user:password@host:1433/dbname?driver=ODBC+Driver+18+
for+SQL+Server&TrustServerCertificate=yes; the login needs to create tables and triggers).
These machines have none: each test skips, inside the test, with the documented reason.

What runs: `bridge init` and install-triggers on an `orders` table (the golden files' shape,
tests/unit/test_mssql_dialect.py), an application's INSERT, UPDATE (of a value, then of the
key), multi-row INSERT and DELETE captured into the outbox with the expected payloads and
row hashes, echo suppression (a write in an apply session is not captured), a remote
change applied by the Applier (once, and not captured), the dispatcher's statements on the
outbox, and uninstall + uninit. Every object it creates has a name of its own and is
dropped at the end.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from bridge import install, uninit
from bridge.apply import Applier
from bridge.config import Config, TableConfig
from bridge.decision import APPLIED, DUPLICATE
from bridge.dialects.base import literal
from bridge.dialects.mssql import MSSQLDialect
from bridge.event import Event

pytestmark = pytest.mark.integration

URL_VARIABLE = "BRIDGE_TEST_MSSQL_URL"
NO_SERVER = "no SQL Server server: set BRIDGE_TEST_MSSQL_URL (these machines have none)"
MS = MSSQLDialect()

ORDERS = """\
CREATE TABLE {table} (
    region     NVARCHAR(8)      NOT NULL,
    id         BIGINT           NOT NULL,
    lines      INT              NOT NULL,
    Customer   NVARCHAR(200)    NOT NULL,
    notes      NVARCHAR(MAX)    NULL,
    code       VARCHAR(20)      NULL,
    amount     DECIMAL(12, 2)   NOT NULL,
    paid       BIT              NOT NULL,
    placed_at  DATETIME2(6)     NOT NULL,
    updated_at DATETIMEOFFSET   NULL,
    ship_date  DATE             NULL,
    ship_time  TIME             NULL,
    ref        UNIQUEIDENTIFIER NULL,
    blob       VARBINARY(MAX)   NULL,
    ratio      FLOAT            NULL,
    doc        NVARCHAR(MAX)    NULL CONSTRAINT {table}_doc_is_json CHECK (ISJSON(doc) = 1),
    CONSTRAINT {table}_pk PRIMARY KEY (region, id)
)"""

INSERT = (
    "INSERT INTO {table} (region, id, lines, Customer, notes, code, amount, paid, placed_at, "
    "updated_at, ship_date, ship_time, ref, blob, ratio, doc) VALUES ("
    "N'EU', 1, 3, N'Zürich \"d''Or\" a/b', NULL, 'X-1', 12.5, 1, '2026-01-02T03:04:05.123456', "
    "'2026-01-02T05:04:05.5+02:00', '2026-01-03', '10:11:12.5', "
    "'0B6F1B2C-3D4E-4F50-8A9B-0C1D2E3F4A5B', 0x00FF10, 0.1, N'{{\"a\": [1, 2]}}')"
)


def server_url() -> str:
    """The server's URL, or skip the calling test (inside it, as tests/skips.py wants)."""
    url = os.environ.get(URL_VARIABLE, "").strip()
    if not url:
        pytest.skip(NO_SERVER)
    return url


@pytest.fixture
def site(request: pytest.FixtureRequest) -> Callable[[str], dict[str, Any]]:
    """A factory: a fresh `orders` table with bridge installed, for the given server;
    removed (with bridge's tables) when the test ends."""

    def make(url: str) -> dict[str, Any]:
        table = f"bt_orders_{uuid.uuid4().hex[:8]}"
        conn = MS.connect(url)
        request.addfinalizer(lambda: _teardown(url, table, conn))
        conn.execute(ORDERS.format(table=table))
        sink = install.ConnectionSink(conn)
        install.init(MS, conn, "PARIS", sink, execute=True)
        install.install_triggers(MS, conn, [table], sink, execute=True)
        return {"url": url, "conn": conn, "table": table}

    return make


def _teardown(url: str, table: str, used: Any) -> None:
    used.close()  # its session may hold the dispatcher lease, which uninit takes
    conn = MS.connect(url)
    try:
        sink = install.ConnectionSink(conn)
        install.uninstall_triggers(MS, conn, [table], sink, execute=True)
        conn.execute(f"DROP TABLE IF EXISTS [{table}]")
        uninit.uninit(MS, conn, "PARIS", sink, execute=True, discard_unpublished=True)
    finally:
        conn.close()


def outbox(conn: Any) -> list[tuple[str, dict[str, Any], bytes, str]]:
    rows = conn.execute(
        "SELECT [type], payload, row_hash, CAST(tx AS varchar(20)) FROM bridge_outbox ORDER BY seq"
    ).fetchall()
    return [(t, json.loads(p), bytes(h), tx) for t, p, h, tx in rows]


def row_hash(table: str, key: dict[str, Any]) -> bytes:
    """What the capture hashes: the table's name, a line feed, the key's text, as UTF-16."""
    return hashlib.sha256(f"{table}\n{MS.key_text(key)}".encode("utf-16-le")).digest()


@pytest.mark.allowed_skip("no SQL Server server on this machine")
def test_changes_are_captured_with_their_exact_values(site: Any) -> None:
    s = site(server_url())
    conn, table = s["conn"], s["table"]
    conn.execute(INSERT.format(table=table))
    [(type_, payload, hashed, _tx)] = outbox(conn)
    key = {"id": 1, "region": "EU"}
    assert type_ == f"{table}.insert"
    assert payload["table"] == table and payload["op"] == "insert"
    assert payload["key"] == key and payload["seen"] is None
    assert payload["json_text"] == ["doc"]  # the ISJSON check makes it a JSON column
    assert payload["row"] == {
        "region": "EU",
        "id": 1,
        "lines": 3,
        "Customer": 'Zürich "d\'Or" a/b',
        "notes": None,
        "code": "X-1",
        "amount": "12.50",
        "paid": True,
        "placed_at": "2026-01-02T03:04:05.123456",
        "updated_at": "2026-01-02T03:04:05.500000Z",
        "ship_date": "2026-01-03",
        "ship_time": "10:11:12.5",
        "ref": "0b6f1b2c-3d4e-4f50-8a9b-0c1d2e3f4a5b",
        "blob": base64.b64encode(b"\x00\xff\x10").decode(),
        "ratio": payload["row"]["ratio"],
        "doc": '{"a": [1, 2]}',
    }
    assert float(payload["row"]["ratio"]) == 0.1  # 17 digits, read back exactly
    assert hashed == row_hash(table, key)

    conn.execute(f"UPDATE [{table}] SET amount = 13 WHERE region = N'EU' AND id = 1")
    conn.execute(f"UPDATE [{table}] SET id = 2 WHERE region = N'EU' AND id = 1")
    conn.execute(f"UPDATE [{table}] SET region = N'eu' WHERE region = N'EU' AND id = 2")
    conn.execute(f"DELETE FROM [{table}] WHERE id = 2")
    changes = [(t.rsplit(".", 1)[1], p["key"]) for t, p, _, _ in outbox(conn)[1:]]
    assert changes == [
        ("update", {"id": 1, "region": "EU"}),
        # a key change: the old key deleted, then the new one written
        ("delete", {"id": 1, "region": "EU"}),
        ("update", {"id": 2, "region": "EU"}),
        # a change of case only is a key change too, whatever the collation says
        ("delete", {"id": 2, "region": "EU"}),
        ("update", {"id": 2, "region": "eu"}),
        ("delete", {"id": 2, "region": "eu"}),
    ]
    stamps = conn.execute("SELECT created_at FROM bridge_outbox ORDER BY seq").fetchall()
    assert [r[0] for r in stamps] == sorted(r[0] for r in stamps)  # a row's changes in order


@pytest.mark.allowed_skip("no SQL Server server on this machine")
def test_a_statement_of_many_rows_is_one_transaction_s_rows(site: Any) -> None:
    s = site(server_url())
    conn, table = s["conn"], s["table"]
    conn.execute(
        f"INSERT INTO [{table}] (region, id, lines, Customer, amount, paid, placed_at) "
        "SELECT N'US', n, 1, N'c', 1, 0, SYSUTCDATETIME() FROM (VALUES (1), (2), (3)) AS v (n)"
    )
    rows = outbox(conn)
    assert sorted(p["key"]["id"] for _, p, _, _ in rows) == [1, 2, 3]
    assert len({tx for *_, tx in rows}) == 1


@pytest.mark.allowed_skip("no SQL Server server on this machine")
def test_an_apply_session_is_not_captured(site: Any) -> None:
    s = site(server_url())
    table = s["table"]
    applier_conn = MS.connect(s["url"])
    try:
        applier_conn.execute(MS.render("apply_begin", tables=[literal(f"[{table}]")])).fetchall()
        applier_conn.execute(INSERT.format(table=table))
    finally:
        applier_conn.close()
    assert outbox(s["conn"]) == []


@pytest.mark.allowed_skip("no SQL Server server on this machine")
def test_a_remote_change_is_applied_once_and_not_captured(site: Any) -> None:
    s = site(server_url())
    conn, table = s["conn"], s["table"]
    config = Config(
        site="PARIS",
        database_url=s["url"],
        amqp_url="amqp://unused",
        sites=("PARIS", "LONDON"),
        tables=(TableConfig(table),),
    )
    applier = Applier(config, MS)
    try:
        row = {
            "region": "EU", "id": 7, "lines": 2, "Customer": "Ågot", "notes": None,
            "code": None, "amount": "99.95", "paid": False,
            "placed_at": "2026-03-04T05:06:07.000001", "updated_at": None,
            "ship_date": None, "ship_time": None, "ref": None, "blob": None,
            "ratio": None, "doc": None,
        }  # fmt: skip
        event = Event(
            str(uuid.uuid4()),
            dt.datetime(2026, 3, 4, 5, 6, 7, 8, tzinfo=dt.UTC),
            "LONDON",
            f"{table}.insert",
            {"table": table, "op": "insert", "key": {"region": "EU", "id": 7}, "row": row},
        )
        assert [o.status for o in applier.apply_batch([event])] == [APPLIED]
        assert [o.status for o in applier.apply_batch([event])] == [DUPLICATE]
        too_precise = Event(
            str(uuid.uuid4()),
            dt.datetime(2026, 3, 4, 5, 6, 8, tzinfo=dt.UTC),
            "LONDON",
            f"{table}.update",
            {"table": table, "op": "update", "key": {"region": "EU", "id": 7},
             "row": {**row, "amount": "1.005"}},
        )  # fmt: skip
        [refused] = applier.apply_batch([too_precise])
        assert refused.status == "conflict" and "more decimal places" in refused.reason
    finally:
        applier.close()
    amount = conn.execute(f"SELECT amount FROM [{table}] WHERE id = 7").fetchone()[0]
    assert amount == Decimal("99.95")
    assert outbox(conn) == []  # applied by bridge: not captured again
    version = conn.execute("SELECT origin, deleted FROM bridge_row_version").fetchall()
    assert [tuple(v) for v in version] == [("LONDON", False)]


@pytest.mark.allowed_skip("no SQL Server server on this machine")
def test_the_dispatcher_statements(site: Any) -> None:
    s = site(server_url())
    conn, table = s["conn"], s["table"]
    assert conn.execute(MS.render("outbox_last_seq")).fetchone()[0] == 0
    conn.execute(INSERT.format(table=table))
    rows = conn.execute(MS.render("outbox_fetch"), {"after": 0, "gaps": [], "limit": 10}).fetchall()
    assert len(rows) == 1 and rows[0][3] == "PARIS" and rows[0][6]
    assert rows[0][2].tzinfo is not None
    seq = rows[0][0]
    marked = conn.execute(MS.render("outbox_mark_published"), {"seqs": [seq]}).fetchall()
    assert [r[0] for r in marked] == [seq]
    assert conn.execute(MS.render("dispatcher_lease")).fetchone()[0]
    other = MS.connect(s["url"])
    try:
        assert not other.execute(MS.render("dispatcher_lease")).fetchone()[0]
    finally:
        other.close()
    conn.execute(MS.render("meta_add"), {"key": "dispatcher", "counts": json.dumps({"sent": 2})})
    conn.execute(MS.render("meta_add"), {"key": "dispatcher", "counts": json.dumps({"sent": 1})})
    counts = conn.execute(MS.render("meta_get"), {"key": "dispatcher"}).fetchone()[0]
    assert json.loads(counts) == {"sent": 3}
