"""Database errors seen by a running bridge are logged on one line each, and it recovers."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import converged, db_of, outbox_empty, running, sql, wait_for

pytestmark = pytest.mark.integration


def test_a_lost_database_connection_is_logged_on_one_line(sites, caplog):
    caplog.set_level(logging.INFO)
    london, madrid = sites["LONDON"], sites["MADRID"]
    with running(london, madrid):
        sql(db_of(london), "INSERT INTO orders (id, customer) VALUES (1, 'a')")
        wait_for(lambda: converged([london, madrid]) and outbox_empty(london), 30, "row at MADRID")
        # bridge's connections to MADRID's database end (as in a database restart): libpq
        # reports that on several lines ("server closed the connection unexpectedly" /
        # "This probably means the server terminated abnormally ...")
        killed = sql(
            "postgres",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'bridge'",
            db_of(madrid),
        )
        assert killed
        sql(db_of(london), "INSERT INTO orders (id, customer) VALUES (2, 'b')")
        sql(db_of(madrid), "INSERT INTO orders (id, customer) VALUES (3, 'c')")

        def warned(*words: str) -> bool:
            return any(
                r.name.startswith("bridge")
                and r.levelno == logging.WARNING
                and all(w in r.getMessage() for w in words)
                for r in caplog.records
            )

        wait_for(
            lambda: warned("site=MADRID", "queue=SITE_MADRID", "database unavailable"),
            30,
            "MADRID's consumer warning about its lost connection",
        )
        wait_for(lambda: warned("site=MADRID", "dispatcher", "retrying"), 30, "dispatcher warning")
        wait_for(
            lambda: (
                len(sql(db_of(london), "SELECT id FROM orders")) == 3
                and converged([london, madrid])
                and outbox_empty(madrid)
            ),
            60,
            "recovery: every row at both sites",
        )
    multi_line = [r.getMessage() for r in caplog.records if "\n" in r.getMessage()]
    assert multi_line == []
