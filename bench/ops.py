"""What the operations features cost end to end: bench/end_to_end.py plain, with every
bridge serving /metrics scraped once per second (`--metrics`), and with TLS to the broker
(`--tls`), in one invocation, then the figures side by side in results/ops.md.

    python -m bench.ops [--quick] [--rounds R] [--passes P] [--vhost V]
        [--variants plain,metrics,tls]

Variants: `plain` (no metrics_address, amqp://), `metrics`, `tls`, and `metrics+tls`
(both). Each pass runs every variant once (a whole end_to_end run: its own databases,
queues and `--rounds` rounds, 1 by default here), the order reversed from one pass to the
next, so that the variants take turns as the other benchmarks' baseline and subject do.
Load from outside moves every figure on a shared machine; what is compared is, per pass,
each variant against the first (`plain`) in the same pass (its ratio), and the median of
those ratios over the passes. The rate of the writer alone, measured in each run, shows
how loaded the machine was.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bench import end_to_end
from bench.common import AMQPS_HOST_PORT, RESULTS, log, median, parser

NAME = "ops"
KEYS = ("e2e_per_s", "solo_writer_per_s", "throughput_ratio", "latency_p50_ms", "latency_p99_ms")
FLAGS = {"plain": [], "metrics": ["--metrics"], "tls": ["--tls"]}


def flags(variant: str) -> list[str]:
    """end_to_end's options of a variant: `plain`, `metrics`, `tls` or `metrics+tls`."""
    parts = variant.split("+")
    unknown = [p for p in parts if p not in FLAGS]
    if unknown:
        raise SystemExit(f"unknown variant {unknown[0]!r}: give some of {', '.join(FLAGS)}")
    return [f for p in parts for f in FLAGS[p]]


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
    passed = ["--vhost", args.vhost, "--rounds", str(args.rounds or 1)]
    if args.quick:
        passed.append("--quick")
    if args.amqp_host_port:
        passed += ["--amqp-host-port", args.amqp_host_port]
    passed += ["--amqps-host-port", args.amqps_host_port]
    variants = args.variants.split(",")
    options = {v: flags(v) for v in variants}
    passes: list[dict[str, dict[str, float]]] = []
    for n in range(args.passes):
        one: dict[str, dict[str, float]] = {}
        for variant in variants if n % 2 == 0 else list(reversed(variants)):
            log(f"ops: pass {n + 1}/{args.passes}, end to end {variant}")
            result = end_to_end.main([*passed, *options[variant]])
            one[variant] = {k: float(result["medians"][k]) for k in KEYS}
            one[variant]["redone"] = float(len(result["discarded_attempts"]))
            scrapes = result.get("metrics_scrapes")
            if scrapes:
                one[variant]["scrapes"] = float(scrapes["scrapes"])
                one[variant]["scrape_failures"] = float(scrapes["failures"])
        passes.append(one)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"argv": list(argv or []), "variants": variants, "passes": passes}
    (RESULTS / f"{NAME}.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / f"{NAME}.md").write_text(markdown(passes, variants, args))
    log(f"wrote {RESULTS / f'{NAME}.md'}")
    return out


def markdown(passes: list[dict[str, dict[str, float]]], variants: list[str], args: Any) -> str:
    base = variants[0]

    def med(variant: str, key: str) -> float:
        return median([p[variant][key] for p in passes])

    def ratio(variant: str, key: str) -> float:
        return median([p[variant][key] / p[base][key] for p in passes if p[base][key]])

    def scrapes(variant: str) -> str:
        if not all("scrapes" in p[variant] for p in passes):
            return "-"
        done = sum(p[variant]["scrapes"] for p in passes)
        failed = sum(p[variant]["scrape_failures"] for p in passes)
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
        f"Medians over the passes; ratios are per pass against `{base}` in the same pass, "
        "then their median.",
        "",
        f"| variant | events/s end to end | ratio to {base} | e2e / writer alone | "
        "p50 ms at 200/s | p50 ratio | p99 ms | p99 ratio | writer alone /s | "
        "scrapes / failed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        lines.append(
            f"| {v} | {med(v, 'e2e_per_s'):.0f} | {ratio(v, 'e2e_per_s'):.2f} | "
            f"{med(v, 'throughput_ratio'):.2f} | {med(v, 'latency_p50_ms'):.1f} | "
            f"{ratio(v, 'latency_p50_ms'):.2f} | {med(v, 'latency_p99_ms'):.1f} | "
            f"{ratio(v, 'latency_p99_ms'):.2f} | {med(v, 'solo_writer_per_s'):.0f} | "
            f"{scrapes(v)} |"
        )
    lines += [
        "",
        "Per pass (events/s end to end, p50 ms, p99 ms, writer alone /s, runs redone; "
        "scrapes/failed where scraped):",
        "",
    ]
    for n, p in enumerate(passes, 1):
        cells = "; ".join(
            f"{v} {p[v]['e2e_per_s']:.0f}/s, {p[v]['latency_p50_ms']:.1f}, "
            f"{p[v]['latency_p99_ms']:.1f}, {p[v]['solo_writer_per_s']:.0f}/s, "
            f"{p[v]['redone']:.0f}"
            + (
                f", {p[v]['scrapes']:.0f}/{p[v]['scrape_failures']:.0f} scrapes"
                if "scrapes" in p[v]
                else ""
            )
            for v in p
        )
        lines.append(f"- pass {n}: {cells}")
    lines += [
        "",
        "## Reading",
        "",
        "(to be written by hand after the run: code commit, how loaded the machine was, "
        "what is likely real and what is noise)",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
