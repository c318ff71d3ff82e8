"""One module per database dialect; `for_url` picks the one a database URL names."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bridge.dialects.base import Dialect
from bridge.errors import ConfigError


def for_url(url: str) -> Dialect:
    """The dialect for a SQLAlchemy-style database URL."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise ConfigError(
            "database_url is not a valid SQLAlchemy URL; write it like "
            "postgresql://user@host:5432/dbname"
        ) from None
    return by_name(backend)


NAMES = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mariadb",
    "mariadb": "mariadb",
    "mssql": "mssql",
    "oracle": "oracle",
}


def by_name(name: str) -> Dialect:
    """The dialect of a name as URLs and `--dialect` write it: postgresql, mariadb (or
    mysql), mssql, oracle."""
    key = NAMES.get(name.lower())
    if key == "postgresql":
        from bridge.dialects.postgresql import PostgresDialect

        return PostgresDialect()
    if key == "mariadb":
        from bridge.dialects.mariadb import MariaDBDialect

        return MariaDBDialect()
    if key == "mssql":
        from bridge.dialects.mssql import MSSQLDialect

        mssql: Dialect = MSSQLDialect()
        return mssql
    if key == "oracle":
        from bridge.dialects.oracle import OracleDialect

        oracle: Dialect = OracleDialect()
        return oracle
    raise ConfigError(
        f"database dialect {name!r} is not supported; supported: postgresql, mariadb "
        "(mysql+pymysql://), mssql (mssql+pyodbc://), oracle (oracle+oracledb://)"
    )


__all__ = ["Dialect", "by_name", "for_url"]
