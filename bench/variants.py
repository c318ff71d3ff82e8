"""Variants of bench/end_to_end.py compared in one invocation (bench/acks.py, bench/ops.py).

Each pass runs every variant once (a whole end_to_end run: its own databases, queues and
rounds), the order reversed from one pass to the next, so that the variants take turns as
the other benchmarks' baseline and subject do. Load from outside moves every figure on a
shared machine; what is compared is, per pass, each variant against the first in the same
pass (its ratio), and the median of those ratios over the passes. The rate of the writer
alone, measured in each run, shows how loaded the machine was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bench import end_to_end
from bench.common import RESULTS, log, median

KEYS = ("e2e_per_s", "solo_writer_per_s", "throughput_ratio", "latency_p50_ms", "latency_p99_ms")
Pass = dict[str, dict[str, float]]  # variant -> its figures in one pass


def common_args(args: Any) -> list[str]:
    """end_to_end's options every variant gets: vhost, rounds (1 unless given), --quick,
    the broker's address."""
    out = ["--vhost", args.vhost, "--rounds", str(args.rounds or 1)]
    if args.quick:
        out.append("--quick")
    if args.amqp_host_port:
        out += ["--amqp-host-port", args.amqp_host_port]
    return out


def figures(result: dict[str, Any]) -> dict[str, float]:
    """What a comparison keeps of one end_to_end run."""
    out = {k: float(result["medians"][k]) for k in KEYS}
    out["redone"] = float(len(result["discarded_attempts"]))
    scrapes = result.get("metrics_scrapes")
    if scrapes:
        out["scrapes"] = float(scrapes["scrapes"])
        out["scrape_failures"] = float(scrapes["failures"])
    return out


def run_passes(
    name: str, variants: Mapping[str, Sequence[str]], common: Sequence[str], passes: int
) -> list[Pass]:
    """`passes` end_to_end runs of every variant (name -> its own options), the order
    reversed every other pass."""
    order = list(variants)
    out: list[Pass] = []
    for n in range(passes):
        one: Pass = {}
        for v in order if n % 2 == 0 else list(reversed(order)):
            log(f"{name}: pass {n + 1}/{passes}, end to end {v}")
            one[v] = figures(end_to_end.main([*common, *variants[v]]))
        out.append(one)
    return out


def write(name: str, out: dict[str, Any], markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    log(f"wrote {RESULTS / f'{name}.md'}")


def comparison(
    passes: list[Pass],
    variants: Sequence[str],
    label: str,
    extra: tuple[str, Callable[[str], str]] | None = None,
) -> list[str]:
    """The table: medians over the passes, and the median of per-pass ratios to the first
    variant; `extra` adds a column (header, cell of a variant)."""
    base = variants[0]

    def med(v: str, key: str) -> float:
        return median([p[v][key] for p in passes])

    def ratio(v: str, key: str) -> float:
        return median([p[v][key] / p[base][key] for p in passes if p[base][key]])

    more = f" {extra[0]} |" if extra else ""
    lines = [
        f"| {label} | events/s end to end | ratio to {base} | e2e / writer alone | "
        f"p50 ms at 200/s | p50 ratio | p99 ms | p99 ratio | writer alone /s |{more}",
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if extra else ""),
    ]
    for v in variants:
        cell = f" {extra[1](v)} |" if extra else ""
        lines.append(
            f"| {v} | {med(v, 'e2e_per_s'):.0f} | {ratio(v, 'e2e_per_s'):.2f} | "
            f"{med(v, 'throughput_ratio'):.2f} | {med(v, 'latency_p50_ms'):.1f} | "
            f"{ratio(v, 'latency_p50_ms'):.2f} | {med(v, 'latency_p99_ms'):.1f} | "
            f"{ratio(v, 'latency_p99_ms'):.2f} | {med(v, 'solo_writer_per_s'):.0f} |{cell}"
        )
    return lines


def per_pass(passes: list[Pass]) -> list[str]:
    """One line per pass, variants in the order they ran."""
    lines = []
    for n, p in enumerate(passes, 1):
        cells = "; ".join(
            f"{v} {f['e2e_per_s']:.0f}/s, {f['latency_p50_ms']:.1f}, "
            f"{f['latency_p99_ms']:.1f}, {f['solo_writer_per_s']:.0f}/s, {f['redone']:.0f}"
            + (f", {f['scrapes']:.0f}/{f['scrape_failures']:.0f} scrapes" if "scrapes" in f else "")
            for v, f in p.items()
        )
        lines.append(f"- pass {n}: {cells}")
    return lines
