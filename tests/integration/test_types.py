"""Every supported column type crosses from one PostgreSQL site to another unchanged:
the capture template's JSON encoding and the applier's decoding agree."""

from __future__ import annotations

import pytest

from tests.conftest import (
    DB_PREFIX,
    NAMES,
    SITES,
    create_site_db,
    make_config,
    running,
    setup_site,
    sql,
    wait_for,
)

pytestmark = pytest.mark.integration

DDL = """
CREATE TABLE everything (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    i2      smallint, i4 integer, i8 bigint,
    num     numeric, num2 numeric(38, 18),
    f4      real, f8 double precision,
    b       boolean,
    t       text, vc varchar(20), ch char(3),
    by      bytea,
    tstz    timestamptz, ts timestamp, d date, tm time,
    js      jsonb, j json,
    u       uuid,
    arr     text[],
    iv      interval
)
"""

ROWS = """
INSERT INTO everything (i2, i8, num, num2, f4, f8, b, t, vc, ch, by, tstz, ts, d, tm, js, j, u,
                        arr, iv)
VALUES (-32768, 9223372036854775807, 123456789012345678901234567890.123456789,
        -0.000000000000000001, 1.5, 1e308, true, 'héllo ✓ ''quoted'' \\ back', 'vc', 'ab',
        '\\x00ff10'::bytea, '2026-11-24 10:00:00.123456+05', '1999-12-31 23:59:59.999999',
        '0001-01-01', '23:59:59.000001', '{"a": [1, null, {"b": "c"}]}', '{"x": 1}',
        '0b6f1c7e-2f7e-4a0b-9d7e-1f2e3d4c5b6a', ARRAY['a', NULL, 'c d'], '1 day 02:03:04'),
       (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, NULL, NULL),
       (0, 0, 0, 0, 'NaN', '-Infinity', false, '', '', '', '', '-infinity', 'epoch', '2026-02-28',
        '00:00', '[]', 'null', '00000000-0000-0000-0000-000000000000', '{}', '0')
"""


def test_all_types_round_trip(fresh_topology):
    cfgs = []
    for name, site in list(zip(NAMES, SITES, strict=True))[:2]:
        db = f"{DB_PREFIX}types_{name.lower()}"
        create_site_db(db, DDL)
        cfg = make_config(site, db, tables={"everything": "lww"})
        setup_site(cfg)
        cfgs.append(cfg)
    src, dst = (c.database_url.rsplit("/", 1)[1] for c in cfgs)
    sql(src, ROWS)
    sql(src, "UPDATE everything SET t = t || '!' WHERE id = 1")
    # compared as PostgreSQL prints them (numeric scale, time zones, infinities included)
    query = "SELECT everything::text FROM everything ORDER BY id"
    with running(*cfgs):
        wait_for(lambda: sql(dst, query) == sql(src, query), 30, "identical rows")
    assert len(sql(dst, query)) == 3
