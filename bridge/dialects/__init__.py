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
    if backend == "postgresql":
        from bridge.dialects.postgresql import PostgresDialect

        return PostgresDialect()
    raise ConfigError(f"database dialect {backend!r} is not supported yet; supported: postgresql")


__all__ = ["Dialect", "for_url"]
