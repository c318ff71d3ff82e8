"""What a delete's tombstone does and does not do under last-writer-wins, as README and
docs/conflicts.md say: it keeps out changes stamped before the delete (test_sync.py,
test_delete_is_not_resurrected_by_an_older_update_arriving_late), and a change stamped
after it wins, even one made at a site the delete had not reached yet."""

from __future__ import annotations

import pytest

from bridge import verify
from tests.conftest import converged, db_of, outbox_empty, rows, running, sql, wait_for

pytestmark = pytest.mark.integration


def test_an_update_stamped_after_the_delete_brings_the_row_back_everywhere(sites):
    cfgs = list(sites.values())
    paris, london, madrid = (db_of(sites[s]) for s in ("PARIS", "LONDON", "MADRID"))
    with running(*cfgs):
        sql(paris, "INSERT INTO orders (id, customer, note) VALUES (5, 'a', 'v0')")
        wait_for(lambda: converged(cfgs) and rows(cfgs[2]), 30, "initial row everywhere")
    # bridges down (the sites cut off): PARIS deletes the row, then LONDON, which has not
    # seen the delete, updates it
    sql(paris, "DELETE FROM orders WHERE id = 5")
    sql(london, "UPDATE orders SET note = 'after the delete' WHERE id = 5")
    stamps = [
        sql(db, "SELECT created_at FROM bridge_outbox WHERE payload->'key' = '{\"id\": 5}'")[0][0]
        for db in (paris, london)
    ]
    assert stamps[0] < stamps[1]  # the update is the later write
    with running(*cfgs):
        wait_for(lambda: all(outbox_empty(c) for c in cfgs) and converged(cfgs), 60, "convergence")
    for db in (paris, london, madrid):
        assert sql(db, "SELECT id, note FROM orders") == [(5, "after the delete")]
        version = sql(
            db, "SELECT deleted, origin FROM bridge_row_version WHERE row_key = '{\"id\": 5}'"
        )
        assert version == [(False, "LONDON")]  # the tombstone was overtaken
    # the delete lost, and is logged where it lost (at least where the update was made)
    lost = sql(london, "SELECT incoming_origin, reason FROM bridge_conflicts")
    assert [origin for origin, _ in lost] == ["PARIS"]
    assert "older than the local version" in lost[0][1]
    assert not verify.verify(sites["PARIS"], {c.site: c.database_url for c in cfgs[1:]})[1]
