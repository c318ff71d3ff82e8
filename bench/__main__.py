"""Run every benchmark in turn: `python -m bench [--quick] [--only NAME ...]`.

Each one writes bench/results/<name>.json|md; this also writes bench/results/summary.md
with the headline figures of the run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import capture, capture_breakdown, dispatcher, end_to_end
from bench.common import RESULTS, fmt, log, table

BENCHMARKS: dict[str, Callable[[Sequence[str] | None], dict[str, Any]]] = {
    "capture": capture.main,
    "dispatcher": dispatcher.main,
    "end_to_end": end_to_end.main,
    "capture_breakdown": capture_breakdown.main,  # diagnostic: only with --only
}
DEFAULT = ["capture", "dispatcher", "end_to_end"]


def headline(name: str, result: dict[str, Any]) -> list[list[str]]:
    if name == "capture_breakdown":
        return [
            [
                f"capture breakdown: {v['variant']} single-row / 100-row ratio",
                f"{fmt(v['single_ratio'], 3)} / {fmt(v['multi_ratio'], 3)}",
                "",
                "",
            ]
            for v in result["variants"]
        ]
    res = result["results"]
    if name == "capture":
        return [
            [
                "capture, single-row tx with/without triggers",
                fmt(res["single_row"]["ratio"], 3),
                res["single_row"]["target"],
                res["single_row"]["verdict"],
            ],
            [
                "capture, 100-row statements with/without triggers",
                fmt(res["multi_row_100"]["ratio"], 3),
                res["multi_row_100"]["target"],
                res["multi_row_100"]["verdict"],
            ],
        ]
    if name == "dispatcher":
        r = res["confirmed_publishes"]
        m = result["medians"]
        return [
            [
                f"dispatcher / bare pika confirmed msg/s ({fmt(m['dispatcher_per_s'])} / "
                f"{fmt(m['bare_pika_per_s'])})",
                fmt(r["ratio"], 3),
                r["target"],
                r["verdict"],
            ]
        ]
    m = result["medians"]
    return [
        [
            f"end to end events/s ({fmt(m['e2e_per_s'])}) / writer alone "
            f"({fmt(m['solo_writer_per_s'])})",
            fmt(m["throughput_ratio"], 3),
            res["throughput"]["target"],
            "",
        ],
        [
            "end to end latency p50 at 200/s, ms",
            fmt(res["latency_p50"]["ms"], 1),
            res["latency_p50"]["target"],
            res["latency_p50"]["verdict"],
        ],
        [
            "end to end latency p99 at 200/s, ms",
            fmt(res["latency_p99"]["ms"], 1),
            res["latency_p99"]["target"],
            res["latency_p99"]["verdict"],
        ],
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=DEFAULT)
    p.add_argument("--vhost", default=None)
    p.add_argument("--amqp-host-port", default=None)
    args = p.parse_args()
    common: list[str] = ["--quick"] if args.quick else []
    if args.vhost:
        common += ["--vhost", args.vhost]
    if args.amqp_host_port:
        common += ["--amqp-host-port", args.amqp_host_port]
    rows: list[list[str]] = []
    took: list[str] = []
    started = time.perf_counter()
    for name in args.only:
        log(f"== {name} ==")
        result = BENCHMARKS[name](common)
        rows += headline(name, result)
        took.append(f"{name} {result['elapsed_s']:.0f} s")
    elapsed = time.perf_counter() - started
    lines = [
        "# Benchmark summary",
        "",
        f"{'quick' if args.quick else 'default'} mode, {elapsed:.0f} s in all "
        f"({', '.join(took)}); details in " + ", ".join(f"{n}.md" for n in args.only),
        "",
        *table(["figure", "value", "target", "verdict"], rows),
    ]
    (RESULTS / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
