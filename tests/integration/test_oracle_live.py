"""The Oracle dialect on a real server: init, install-triggers on an ORDERS table, an
application's INSERT/UPDATE/DELETE captured into the outbox with the expected payload, a
write of an apply session not captured (echo suppression), uninstall and uninit.

Runs only where BRIDGE_TEST_ORACLE_URL names a server (a SQLAlchemy URL such as
oracle+oracledb://bridge:secret@127.0.0.1:1521/?service_name=FREEPDB1, its user granted
what bridge/dialects/oracle.py lists); these machines have none: the tests skip, saying so.
The user's schema gets an ORDERS table and bridge's objects; both are removed at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from bridge import install, uninit
from bridge.dialects.oracle import OracleDialect

pytestmark = pytest.mark.integration

URL = os.environ.get("BRIDGE_TEST_ORACLE_URL", "")
NO_SERVER = "no Oracle server: set BRIDGE_TEST_ORACLE_URL (these machines have none)"
ALLOWED = "no Oracle server on this machine"

ORA = OracleDialect()

ORDERS_DDL = """
CREATE TABLE ORDERS (
    REGION     VARCHAR2(8 CHAR) NOT NULL,
    ID         NUMBER(19)       NOT NULL,
    CUSTOMER   NVARCHAR2(100),
    AMOUNT     NUMBER(12, 2),
    PAID       NUMBER(1),
    PHOTO      BLOB,
    UPDATED_AT TIMESTAMP(6),
    SHIPPED_AT TIMESTAMP(6) WITH TIME ZONE,
    DOC        CLOB CONSTRAINT ORDERS_DOC_JSON CHECK (DOC IS JSON),
    CONSTRAINT ORDERS_PK PRIMARY KEY (REGION, ID)
)"""


def drop_orders(conn: Any) -> None:
    conn.execute(
        "BEGIN EXECUTE IMMEDIATE 'DROP TABLE ORDERS PURGE'; "
        "EXCEPTION WHEN OTHERS THEN IF SQLCODE != -942 THEN RAISE; END IF; END;"
    )


@pytest.fixture
def site() -> Iterator[Any]:
    if not URL:
        pytest.skip(NO_SERVER)
    conn = ORA.connect(URL)
    try:
        drop_orders(conn)
        conn.execute(ORDERS_DDL)
        sink = install.ConnectionSink(conn)
        install.init(ORA, conn, "PARIS", sink, execute=True)
        install.install_triggers(ORA, conn, ["ORDERS"], sink, execute=True)
        yield conn
    finally:
        try:
            install.uninstall_triggers(ORA, conn, ["ORDERS"], install.ConnectionSink(conn), True)
            uninit.uninit(
                ORA,
                conn,
                "PARIS",
                install.ConnectionSink(conn),
                execute=True,
                discard_unpublished=True,
            )
            drop_orders(conn)
        finally:
            conn.close()


def outbox(conn: Any) -> list[tuple[str, dict[str, Any]]]:
    rows = conn.execute("SELECT type, payload FROM bridge_outbox ORDER BY seq").fetchall()
    return [(type_, json.loads(payload)) for type_, payload in rows]


@pytest.mark.allowed_skip(ALLOWED)
def test_application_writes_are_captured(site: Any) -> None:
    conn = site
    with conn.transaction():
        conn.execute(
            "INSERT INTO ORDERS (REGION, ID, CUSTOMER, AMOUNT, PAID, PHOTO, UPDATED_AT, "
            "SHIPPED_AT, DOC) VALUES ('EU', 42, N'Zoë \"L''Été\"', 0.5, 1, HEXTORAW('DEADBEEF'), "
            "TIMESTAMP '2026-01-02 03:04:05.123456', "
            "TIMESTAMP '2026-01-02 05:04:05.5 +02:00', '{\"a\": [1, 2]}')"
        )
    with conn.transaction():
        conn.execute("UPDATE ORDERS SET AMOUNT = 12.5, PAID = 0 WHERE REGION = 'EU' AND ID = 42")
    with conn.transaction():
        conn.execute("UPDATE ORDERS SET ID = 43 WHERE REGION = 'EU' AND ID = 42")
    with conn.transaction():
        conn.execute("DELETE FROM ORDERS WHERE REGION = 'EU' AND ID = 43")
    captured = outbox(conn)
    assert [t for t, _ in captured] == [
        "ORDERS.insert",
        "ORDERS.update",
        "ORDERS.delete",  # the key changed: the old key is deleted,
        "ORDERS.update",  # the new one written
        "ORDERS.delete",
    ]
    first = captured[0][1]
    assert first["table"] == "ORDERS" and first["op"] == "insert"
    assert first["key"] == {"ID": 42, "REGION": "EU"}
    assert first["row"] == {
        "REGION": "EU",
        "ID": 42,
        "CUSTOMER": 'Zoë "L\'Été"',
        "AMOUNT": "0.50",
        "PAID": True,
        "PHOTO": "3q2+7w==",
        "UPDATED_AT": "2026-01-02T03:04:05.123456",
        "SHIPPED_AT": "2026-01-02T03:04:05.500000Z",
        "DOC": '{"a": [1, 2]}',
    }
    assert first["json_text"] == ["DOC"] and first["seen"] is None
    assert captured[1][1]["row"]["AMOUNT"] == "12.50" and captured[1][1]["row"]["PAID"] is False
    assert captured[2][1]["key"] == {"ID": 42, "REGION": "EU"}
    assert captured[3][1]["key"] == {"ID": 43, "REGION": "EU"}
    # the key's text is what the applier computes for the same key (row hashes agree)
    row = conn.execute(
        "SELECT COUNT(*) FROM bridge_outbox WHERE row_hash = "
        "STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256')",
        {"table": "ORDERS", "key": ORA.key_text({"ID": 42, "REGION": "EU"})},
    ).fetchone()
    assert row == (3,)


@pytest.mark.allowed_skip(ALLOWED)
def test_a_write_of_an_apply_session_is_not_captured(site: Any) -> None:
    conn = site
    with conn.transaction():
        conn.execute(ORA.statements("apply_begin", tables=[], names=["'ORDERS'"])[0])
        conn.execute("INSERT INTO ORDERS (REGION, ID) VALUES ('EU', 1)")
    assert outbox(conn) == []
    other = ORA.connect(URL)  # an application's session: captured
    try:
        with other.transaction():
            other.execute("INSERT INTO ORDERS (REGION, ID) VALUES ('EU', 2)")
    finally:
        other.close()
    assert [p["key"] for _, p in outbox(conn)] == [{"ID": 2, "REGION": "EU"}]


@pytest.mark.allowed_skip(ALLOWED)
def test_uninstall_removes_the_trigger(site: Any) -> None:
    conn = site
    assert uninit.captured_tables(ORA, conn) == {"ORDERS": f"{current_schema(conn)}.ORDERS"}
    install.uninstall_triggers(ORA, conn, ["ORDERS"], install.ConnectionSink(conn), True)
    assert uninit.captured_tables(ORA, conn) == {}
    with conn.transaction():
        conn.execute("INSERT INTO ORDERS (REGION, ID) VALUES ('EU', 3)")
    assert outbox(conn) == []


def current_schema(conn: Any) -> str:
    row = conn.execute("SELECT SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA') FROM DUAL").fetchone()
    return str(row[0])
