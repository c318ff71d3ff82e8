"""A randomized three-site run: every site's application writes the same few keys at once
(upserts, updates, deletes), while one site after another is partitioned from the broker
(its connections cut, or silently black-holed) and healed. Afterwards every site holds
the same rows, and they are the rows last-writer-wins says, computed from the archive (the
golden source); every event reached every site once; every event a site did not apply is
accounted for: a conflict it logged, or an older change of a writer superseded by a later
one of the same writer, or a delete of a row that was not there."""

from __future__ import annotations

import os
import random
import threading
import time

import psycopg
import pytest

from bridge import verify
from bridge.config import Config
from tests.conftest import db_of, make_config, sql, wait_for
from tests.faults.harness import Proxy, count, install_audit, processes, settle, tally

pytestmark = pytest.mark.faults

KEYS = 40
PARTITIONS = 6


class RandomWriter(threading.Thread):
    """An application writing shared keys: each change's customer names its writer."""

    def __init__(self, cfg: Config, seed: int, pace: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.cfg, self.rng, self.pace = cfg, random.Random(seed), pace
        self.stop = threading.Event()
        self.events = 0
        self.deletes = 0

    def run(self) -> None:
        with psycopg.connect(self.cfg.database_url, autocommit=True) as conn:
            n = 0
            while not self.stop.is_set():
                n += 1
                key, value = self.rng.randint(1, KEYS), f"{self.cfg.site}-{n}"
                op = self.rng.choices(["upsert", "update", "delete"], weights=[5, 3, 1])[0]
                if op == "upsert":
                    cur = conn.execute(
                        "INSERT INTO orders (id, customer, amount) VALUES (%s, %s, %s) "
                        "ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer, "
                        "amount = EXCLUDED.amount",
                        (key, value, n),
                    )
                elif op == "update":
                    cur = conn.execute(
                        "UPDATE orders SET customer = %s, note = 'updated' WHERE id = %s",
                        (value, key),
                    )
                else:
                    cur = conn.execute("DELETE FROM orders WHERE id = %s", (key,))
                    self.deletes += cur.rowcount
                self.events += cur.rowcount  # one event per row changed
                self.stop.wait(self.pace)


def unpublished(cfg: Config) -> int:
    n: int = sql(db_of(cfg), "SELECT count(*) FROM bridge_outbox WHERE published_at IS NULL")[0][0]
    return n


def lww_expected(archive: Config) -> dict[int, str]:
    """key -> customer of the change with the greatest (timestamp, origin); deleted keys
    are absent."""
    best: dict[int, tuple[object, str, str, str | None]] = {}
    for key, ts, origin, op, customer in sql(
        db_of(archive),
        "SELECT (event #>> '{data,key,id}')::bigint, ts, origin, event #>> '{data,op}', "
        "event #>> '{data,row,customer}' FROM bridge_archive",
    ):
        if key not in best or (ts, origin) > best[key][:2]:
            best[key] = (ts, origin, op, customer)
    return {k: v[3] for k, v in best.items() if v[2] != "delete"}  # type: ignore[misc]


def quiet_count(cfg: Config, table: str, quiet: float = 2.0, timeout: float = 60.0) -> int:
    """The table's row count once it has not changed for `quiet` seconds."""
    last = {"n": count(cfg, table), "since": time.monotonic()}

    def still() -> bool:
        n = count(cfg, table)
        if n != last["n"]:
            last["n"], last["since"] = n, time.monotonic()
        return time.monotonic() - last["since"] >= quiet

    wait_for(still, timeout, f"{cfg.site}'s {table} quiet for {quiet:g}s")
    return int(last["n"])


def test_randomized_run_with_partitions_converges_to_last_writer_wins(sites, tmp_path):
    seed = int(os.environ.get("BRIDGE_FAULT_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\nseed {seed} (BRIDGE_FAULT_SEED={seed} repeats the choices)")
    proxies = {name: Proxy(("127.0.0.1", 5680)) for name in sites}
    cfgs = [
        make_config(c.site, db_of(c), amqp_url=proxies[name].url(c.amqp_url))
        for name, c in sites.items()
    ]
    install_audit(cfgs)
    ws = [RandomWriter(c, rng.randrange(1 << 30)) for c in cfgs]
    partitions = []
    try:
        with processes(cfgs, tmp_path, heartbeat=4) as procs:
            for w in ws:
                w.start()
            for _ in range(PARTITIONS):
                victim = rng.choice(cfgs)
                mode = rng.choice(["cut", "blackhole"])
                proxy = proxies[victim.site]
                before = {w.cfg.site: w.events for w in ws}
                getattr(proxy, mode)()
                # the partition took effect: the victim's changes stop going out...
                wait_for(
                    lambda v=victim: unpublished(v) >= 20,
                    60,
                    f"{victim.site}'s changes held in its outbox ({mode})",
                )
                # what the victim's consumer held when the link went (delivered before
                # it, in the socket or in a batch being applied) may still commit: take
                # the inbox's count once it stopped moving
                received = quiet_count(victim, "bridge_inbox")
                # long enough for conflicting writes on both sides of the partition
                wait_for(
                    lambda b=before: all(w.events >= b[w.cfg.site] + 250 for w in ws),
                    120,
                    f"writes while {victim.site} is partitioned ({mode})",
                )
                # ... and the others' do not come in
                assert count(victim, "bridge_inbox") == received, f"{mode} let events through"
                proxy.heal()
                partitions.append(f"{victim.site}:{mode}")
            for w in ws:
                w.stop.set()
                w.join(30)
            events = sum(w.events for w in ws)
            settle(cfgs, None, events, timeout=300)
    finally:
        for w in ws:
            w.stop.set()
        for p in proxies.values():
            p.close()
    archive = next(c for c in cfgs if c.is_archive)
    t = tally(cfgs, events, procs, archive)
    expected = lww_expected(archive)
    held = {c.site: dict(sql(db_of(c), "SELECT id, customer FROM orders")) for c in cfgs}
    print(
        f"partitions {partitions}; {sum(w.deletes for w in ws)} deletes; "
        f"{len(expected)} keys alive; {t.line()}"
    )
    t.check()  # incl. every event not applied: a logged conflict, superseded or a no-op delete
    for c in cfgs:
        assert held[c.site] == expected, f"{c.site} differs from last-writer-wins"
    assert sum(s.conflicts for s in t.sites.values()) > 0  # the run did make conflicts
    _, differing = verify.verify(cfgs[0], {c.site: c.database_url for c in cfgs[1:]})
    assert differing == []
