"""Capture, taken apart: what each part of the capture trigger costs a writer.

Diagnostic companion of bench.capture (not part of `python -m bench` unless asked with
`--only capture_breakdown`). The trigger function bridge generates for `orders` is
installed as is, then in variants that each remove one more part of it, in scratch
databases `bench_capb_*`; the same single-row and 100-row insert runs as bench.capture
time each, interleaved, and the difference between neighbouring variants is the cost of
the part removed. A variant whose edit no longer matches the generated text (the template
changed) is reported as skipped. One more variant removes the OFFSET 0 fence of the
changed-rows subquery, to show what it saves, and one more sends a notification in every
capturing statement, as the trigger did before the wake-up lock (_wakeup.sql.j2).

    python -m bench.capture_breakdown [--quick] [--rounds R] [--clients C]
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.capture import ROWS_PER_STATEMENT, make_rows, run_multi, run_single
from bench.common import (
    Broker,
    drop_db,
    fmt,
    header,
    log,
    md_header,
    median,
    parser,
    table,
    write_results,
)
from bridge import install
from bridge.dialects import for_url
from tests.conftest import create_site_db, make_config, pg_url, setup_site, sql

NAME = "capture_breakdown"
NOTIFY = "PERFORM pg_catalog.pg_notify('bridge_outbox', '');"
WAKEUP = re.compile(
    r"IF NOT pg_catalog\.pg_try_advisory_xact_lock_shared\(\d+\) THEN\s+"
    + re.escape(NOTIFY)
    + r"\s+END IF;"
)
STAMP = re.compile(r"GREATEST\(c\.now,.*?END\)", re.S)
LOOKUP = re.compile(r"\(SELECT rv\.ts FROM \S*bridge_row_version AS rv\s+WHERE [^)]*\) AS v", re.S)
ROWS = re.compile(r"\(SELECT pg_catalog\.jsonb_build_object\('.*? AS k, .*? AS r\n", re.S)
FENCE = " OFFSET 0) AS c"
BODY = re.compile(r"BEGIN\n.*\nEND\n", re.S)
PREAMBLE = re.compile(r"    IF pg_catalog\.array_position\(.*?(?=    IF TG_OP = 'INSERT')", re.S)
APPLYING = (
    "    IF pg_catalog.current_setting('bridge.applying', true) = 'on' THEN\n"
    "        RETURN NULL;\n"
    "    END IF;\n"
)
Edit = Callable[[str], str]


def _sub(pattern: re.Pattern[str], repl: str) -> Edit:
    def edit(text: str) -> str:
        out, n = pattern.subn(repl, text)
        if not n:
            raise LookupError(pattern.pattern)
        return out

    return edit


def _drop(fragment: str, repl: str = "") -> Edit:
    def edit(text: str) -> str:
        if fragment not in text:
            raise LookupError(fragment)
        return text.replace(fragment, repl)

    return edit


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    edits: tuple[Edit, ...] = ()
    extra: str = ""
    triggers: bool = True


NO_NOTIFY = _sub(WAKEUP, "")
NO_LOOKUP = (_sub(STAMP, "c.now"), _sub(LOOKUP, "NULL::timestamptz AS v"))
CONST = _sub(ROWS, "(SELECT '{}'::jsonb AS k, '{}'::jsonb AS r\n")
VARIANTS = (
    Variant("plain", "no trigger (baseline)", triggers=False),
    Variant("bridge", "bridge's trigger as generated"),
    Variant(
        "unfenced",
        "without OFFSET 0: the version lookup inlined into each use",
        (_drop(FENCE, ") AS c"),),
    ),
    Variant(
        "no_preamble",
        "without the session checks (search_path, settings, JIT, TRUNCATE), applying kept",
        (_sub(PREAMBLE, APPLYING),),
    ),
    Variant(
        "no_key_index",
        "as generated, the outbox without its index of payload keys",
        (),
        "DROP INDEX bridge_outbox_key",
    ),
    Variant(
        "notify_always",
        "a pg_notify in every capturing statement, as before the wake-up lock",
        (_sub(WAKEUP, NOTIFY),),
    ),
    Variant("no_wakeup", "- wake-up (lock or pg_notify)", (NO_NOTIFY,)),
    Variant(
        "no_lookup", "- wake-up - version/outbox lookups (stamp = clock)", (NO_NOTIFY, *NO_LOOKUP)
    ),
    Variant(
        "const",
        "- wake-up - lookups - JSON of the row (constant)",
        (NO_NOTIFY, *NO_LOOKUP, CONST),
    ),
    Variant(
        "no_uuid_key",
        "- wake-up - lookups - JSON - UNIQUE(event_id)",
        (NO_NOTIFY, *NO_LOOKUP, CONST),
        "ALTER TABLE bridge_outbox DROP CONSTRAINT bridge_outbox_event_id_key",
    ),
    Variant(
        "empty",
        "empty trigger function (transition tables only)",
        (_sub(BODY, "BEGIN\n    RETURN NULL;\nEND\n"),),
    ),
)


def db_of(v: Variant) -> str:
    return f"bench_capb_{v.name}"


def build(v: Variant) -> str | None:
    """Create the variant's database; the reason it was skipped, or None."""
    db = db_of(v)
    create_site_db(db)
    if not v.triggers:
        return None
    setup_site(make_config("PARIS", db))
    dialect = for_url(pg_url(db))
    with psycopg.connect(pg_url(db), autocommit=True) as conn:
        info = dialect.introspect(conn, "orders")
    text = install.trigger_statements(dialect, info)[0]
    try:
        for edit in v.edits:
            text = edit(text)
    except LookupError as exc:
        drop_db(db)
        return f"the generated trigger no longer contains {exc.args[0]!r}"
    sql(db, text)
    if v.extra:
        sql(db, v.extra)
    return None


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument("--clients", type=int, default=1, help="client connections (default 1)")
    args = p.parse_args(argv)
    clients: int = args.clients
    quick: bool = args.quick
    rounds = args.rounds or (3 if quick else 5)
    n_single, n_statements = (3000, 200) if quick else (8000, 600)
    broker = Broker(args.vhost, args.amqp_host_port)
    broker.ensure_ready()
    params = {
        "rounds": rounds,
        "single_row_transactions": n_single,
        "multi_row_statements": n_statements,
        "client_connections": clients,
    }
    result = header(NAME, quick, broker, params)
    started = time.perf_counter()
    skipped: dict[str, str] = {}
    variants: list[Variant] = []
    for v in VARIANTS:
        reason = build(v)
        if reason:
            skipped[v.name] = reason
            log(f"breakdown: skipping {v.name}: {reason}")
        else:
            variants.append(v)
    rows = make_rows(max(n_single + 1, (n_statements + 1) * ROWS_PER_STATEMENT))
    runs: dict[str, dict[str, list[float]]] = {
        v.name: {"single": [], "multi": []} for v in variants
    }
    try:
        for v in variants:  # warm-up
            run_single(db_of(v), rows[:300], clients)
            run_multi(db_of(v), rows[: 20 * ROWS_PER_STATEMENT], clients)
        for r in range(rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for v in order:
                runs[v.name]["single"].append(
                    run_single(db_of(v), rows[: n_single + clients], clients)
                )
            for v in order:
                runs[v.name]["multi"].append(
                    run_multi(
                        db_of(v), rows[: (n_statements + clients) * ROWS_PER_STATEMENT], clients
                    )
                )
            log(f"breakdown round {r + 1}/{rounds} done")
    finally:
        for v in VARIANTS:
            drop_db(db_of(v))
    base_s = median(runs["plain"]["single"])
    base_m = median(runs["plain"]["multi"])
    table_rows = []
    for v in variants:
        s, m = median(runs[v.name]["single"]), median(runs[v.name]["multi"])
        table_rows.append(
            {
                "variant": v.name,
                "what": v.what,
                "single_tps": round(s, 1),
                "single_us_per_tx": round(1e6 / s, 1),
                "single_ratio": round(s / base_s, 3),
                "multi_rows_per_s": round(m, 1),
                "multi_us_per_row": round(1e6 / m, 2),
                "multi_ratio": round(m / base_m, 3),
                "raw_single": [round(x, 1) for x in runs[v.name]["single"]],
                "raw_multi": [round(x, 1) for x in runs[v.name]["multi"]],
            }
        )
    result["variants"] = table_rows
    result["skipped"] = skipped
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    write_results(NAME if clients == 1 else f"{NAME}_clients{clients}", result, markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = md_header(result, "Capture taken apart: cost of each part of the trigger")
    lines += [
        f"Medians over rounds, {result['parameters']['client_connections']} client "
        "connection(s), autocommit. `unfenced` and `notify_always` are variations of "
        "`bridge`; from `no_wakeup` on, each row removes "
        "one more part (cumulative): the step between two rows is that part's cost. "
        "Noise on this machine is several percent: read differences below ~10 µs/tx as "
        "noise.",
        "",
    ]
    lines += table(
        ["variant", "single-row tx/s", "µs/tx", "ratio", "100-row rows/s", "µs/row", "ratio"],
        [
            [
                f"{v['variant']}: {v['what']}",
                fmt(v["single_tps"]),
                fmt(v["single_us_per_tx"], 0),
                fmt(v["single_ratio"], 3),
                fmt(v["multi_rows_per_s"]),
                fmt(v["multi_us_per_row"], 1),
                fmt(v["multi_ratio"], 3),
            ]
            for v in result["variants"]
        ],
    )
    if result["skipped"]:
        lines += ["", "Skipped (the generated trigger changed):", ""]
        lines += [f"- {k}: {v}" for k, v in result["skipped"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
