"""TLS settings in database_url reach the driver, against the real PostgreSQL and
MariaDB of this machine (docs/configuration.md, "Database TLS"). Where the server has
TLS on, the connection is encrypted; where it has not (as here today), the URL that asks
for TLS is refused rather than connected in plain text: either way the setting was used."""

from __future__ import annotations

import pytest

from bridge.dialects import for_url
from bridge.errors import DatabaseError
from tests import dbs
from tests.conftest import pg_url, sql

pytestmark = pytest.mark.integration


def test_postgres_sslmode_in_database_url_is_used():
    url = pg_url("postgres") + "?sslmode=require"
    dialect = for_url(url)
    if sql("postgres", "SHOW ssl") == [("on",)]:
        with dialect.connect(url) as conn:
            row = conn.execute(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ).fetchone()
        assert row is not None and row[0] is True, row
    else:
        with pytest.raises(
            DatabaseError, match="server does not support SSL, but SSL was required"
        ):
            dialect.connect(url)
    # and without it, the same server answers (the refusal above was about TLS only)
    with dialect.connect(pg_url("postgres") + "?sslmode=disable") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_mariadb_ssl_parameters_in_database_url_are_used():
    with dbs.connection("mariadb", "mysql") as conn, conn.cursor() as cur:
        cur.execute("SHOW VARIABLES LIKE 'have_ssl'")
        have_ssl = cur.fetchone()[1] == "YES"
    # TLS without checking the server's certificate (this test knows no CA of its own)
    url = f"{dbs.MARIADB}/mysql?ssl_ca=/etc/ssl/certs/ca-certificates.crt&ssl_verify_cert=false"
    dialect = for_url(url)
    if have_ssl:
        conn = dialect.connect(url)
        try:
            cipher = conn.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'").fetchone()
        finally:
            conn.close()
        assert cipher is not None and cipher[1], cipher
    else:
        with pytest.raises(
            DatabaseError, match="SSL is required but the server doesn't support it"
        ):
            dialect.connect(url)
