"""What the operations features cost end to end: bench/end_to_end.py plain, with every
bridge serving /metrics scraped once per second (`--metrics`), and with TLS to the broker
(`--tls`), in one invocation, then the figures side by side in results/ops.md.

    python -m bench.ops [--quick] [--rounds R] [--passes P] [--vhost V]
        [--variants plain,metrics,tls]

Variants: `plain` (no metrics_address, amqp://), `metrics`, `tls`, and `metrics+tls`
(both). Passes, order and ratios as bench/variants.py says: per pass, each variant against
the first (`plain`) in the same pass, then the median of those ratios; the rate of the
writer alone, measured in each run, shows how loaded the machine was. Each run's own
results go to end_to_end_<variant>.* (`+` written `_`), which every pass overwrites.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench import end_to_end
from bench.common import AMQPS_HOST_PORT, parser
from bench.variants import Pass, common_args, comparison, per_pass, run_passes, write

NAME = "ops"
FLAGS = {"plain": [], "metrics": ["--metrics"], "tls": ["--tls"]}


def flags(variant: str) -> list[str]:
    """end_to_end's options of a variant: `plain`, `metrics`, `tls` or `metrics+tls`."""
    parts = variant.split("+")
    unknown = [p for p in parts if p not in FLAGS]
    if unknown:
        raise SystemExit(f"unknown variant {unknown[0]!r}: give some of {', '.join(FLAGS)}")
    return [f for p in parts for f in FLAGS[p]]


def results_name(variant: str) -> str:
    return f"end_to_end_{variant.replace('+', '_')}"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument(
        "--variants", default="plain,metrics,tls", help="variants to compare (the first: baseline)"
    )
    p.add_argument("--passes", type=int, default=2, help="runs of every variant, order alternating")
    p.add_argument(
        "--amqps-host-port",
        default=AMQPS_HOST_PORT,
        help=f"the cluster's TLS port for the tls variant (default {AMQPS_HOST_PORT})",
    )
    args = p.parse_args(argv)
    variants = args.variants.split(",")
    # every variant in its own result files: plain's would overwrite end_to_end.*
    options = {v: [*flags(v), "--results-name", results_name(v)] for v in variants}
    common = [*common_args(args), "--amqps-host-port", args.amqps_host_port]
    passes = run_passes(NAME, options, common, args.passes)
    out = {"argv": list(argv or []), "variants": variants, "passes": passes}
    write(NAME, out, markdown(passes, variants, args))
    return out


def markdown(passes: list[Pass], variants: list[str], args: Any) -> str:
    def scrapes(v: str) -> str:
        if not all("scrapes" in p[v] for p in passes):
            return "-"
        done = sum(p[v]["scrapes"] for p in passes)
        failed = sum(p[v]["scrape_failures"] for p in passes)
        return f"{done:.0f} / {failed:.0f}"

    lines = [
        "# Operations features: what metrics and TLS cost end to end",
        "",
        f"`python -m bench.ops{' --quick' if args.quick else ''} --rounds {args.rounds or 1} "
        f"--passes {args.passes} --vhost {args.vhost} --variants {','.join(variants)}`: "
        "bench/end_to_end.py (commit at PARIS -> visible at LONDON, MADRID and PARIS's "
        "archive; bridges as `bridge run` subprocesses) once per variant per pass, the order "
        "alternating. `metrics`: every bridge serves `metrics_address` and the benchmark "
        f"scrapes each one's /metrics every {end_to_end.SCRAPE_INTERVAL_S:.0f} s for the whole "
        "run; `tls`: every bridge connects with amqps:// through HAProxy's TLS port "
        f"({args.amqps_host_port}, TLS passed through to the nodes) with the cluster's CA. "
        f"Medians over the passes; ratios are per pass against `{variants[0]}` in the same "
        "pass, then their median.",
        "",
        *comparison(passes, variants, "variant", ("scrapes / failed", scrapes)),
        "",
        "Per pass (events/s end to end, p50 ms, p99 ms, writer alone /s, runs redone; "
        "scrapes/failed where scraped):",
        "",
        *per_pass(passes),
        "",
        "## Reading",
        "",
        "(to be written by hand after the run: code commit, how loaded the machine was, "
        "what is likely real and what is noise)",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
