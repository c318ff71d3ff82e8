"""The site databases tests run against, per dialect: create one from a dialect's DDL, run
SQL in it as an application would, drop it. PostgreSQL and MariaDB run on this machine;
SQL Server and Oracle wherever BRIDGE_TEST_MSSQL_URL / BRIDGE_TEST_ORACLE_URL point."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import psycopg

PG = os.environ.get("BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
MARIADB = os.environ.get("BRIDGE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306")

# the `orders` table of the tests, per dialect: the same columns, each dialect's types
ORDERS = {
    "postgresql": """
CREATE TABLE orders (
    id         bigint PRIMARY KEY,
    customer   text NOT NULL,
    amount     numeric(14, 4),
    note       text,
    updated_at timestamptz,
    data       bytea
)
""",
    "mariadb": """
CREATE TABLE orders (
    id         BIGINT PRIMARY KEY,
    customer   TEXT NOT NULL,
    amount     DECIMAL(14, 4),
    note       TEXT,
    updated_at TIMESTAMP(6) NULL,
    data       LONGBLOB
) CHARSET = utf8mb4
""",
}

LIVE = ("postgresql", "mariadb")  # dialects with a server on this machine


def url(dialect: str, db: str) -> str:
    if dialect == "postgresql":
        return f"{PG}/{db}"
    if dialect == "mariadb":
        return f"{MARIADB}/{db}"
    raise ValueError(dialect)


def _maria_connect(db: str | None = None) -> Any:
    import pymysql
    from sqlalchemy.engine import make_url

    u = make_url(MARIADB)
    return pymysql.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 3306,
        user=u.username or "root",
        password=str(u.password or ""),
        database=db,
        autocommit=True,
        charset="utf8mb4",
        init_command="SET time_zone = '+00:00'",
    )


@contextlib.contextmanager
def connection(dialect: str, db: str) -> Iterator[Any]:
    """An application's connection (autocommit), DB-API style (`%s` parameters)."""
    if dialect == "postgresql":
        with psycopg.connect(url(dialect, db), autocommit=True) as conn:
            yield conn
        return
    conn = _maria_connect(db)
    try:
        yield conn
    finally:
        conn.close()


def sql(dialect: str, db: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement as an application would; its rows, if any."""
    with connection(dialect, db) as conn:
        cur = conn.cursor()
        cur.execute(query, params or None)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


CREATED: list[str] = []  # tests/conftest.py drops the test databases of a session that made some


def create(dialect: str, db: str, ddl: str) -> None:
    """A fresh database `db` holding `ddl` (statements separated by `;`)."""
    CREATED.append(db)
    if dialect == "postgresql":
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,)
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{db}"')
            conn.execute(f'CREATE DATABASE "{db}"')
    else:
        conn = _maria_connect()
        try:
            cur = conn.cursor()
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
            cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        finally:
            conn.close()
    for statement in (s for s in ddl.split(";") if s.strip()):
        sql(dialect, db, statement)


def drop_all(prefix: str) -> list[str]:
    """Drop MariaDB's databases named prefix... (PostgreSQL's: tests/conftest.py)."""
    conn = _maria_connect()
    try:
        cur = conn.cursor()
        cur.execute("SHOW DATABASES")
        names = [n for (n,) in cur.fetchall() if n.startswith(prefix)]
        for name in names:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        return names
    finally:
        conn.close()
