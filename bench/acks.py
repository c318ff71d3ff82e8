"""What acknowledgements cost end to end: bench/end_to_end.py with the bridges' `acks`
off, direct and topic, in one invocation, then the figures side by side in results/acks.md.

    python -m bench.acks [--quick] [--rounds R] [--passes P] [--vhost V] [--modes off,direct,topic]

Each pass runs every mode once (a whole end_to_end run: its own databases, queues and
`--rounds` rounds, 1 by default here), the order reversed from one pass to the next, so
that the modes take turns as the other benchmarks' baseline and subject do. Load from
outside moves every figure on a shared machine; what is compared is, per pass, each mode
against `off` in the same pass (its ratio), and the median of those ratios over the passes.
The rate of the writer alone, measured in each run, shows how loaded the machine was.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bench import end_to_end
from bench.common import RESULTS, log, median, parser

NAME = "acks"
KEYS = ("e2e_per_s", "solo_writer_per_s", "throughput_ratio", "latency_p50_ms", "latency_p99_ms")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument("--modes", default="off,direct,topic", help="acks modes (the first: baseline)")
    p.add_argument("--passes", type=int, default=2, help="runs of every mode, order alternating")
    args = p.parse_args(argv)
    passed = ["--vhost", args.vhost, "--rounds", str(args.rounds or 1)]
    if args.quick:
        passed.append("--quick")
    if args.amqp_host_port:
        passed += ["--amqp-host-port", args.amqp_host_port]
    modes = args.modes.split(",")
    passes: list[dict[str, dict[str, float]]] = []
    for n in range(args.passes):
        one: dict[str, dict[str, float]] = {}
        for mode in modes if n % 2 == 0 else list(reversed(modes)):
            log(f"acks: pass {n + 1}/{args.passes}, end to end with acks = {mode}")
            result = end_to_end.main([*passed, "--acks", mode])
            one[mode] = {k: float(result["medians"][k]) for k in KEYS}
            one[mode]["redone"] = float(len(result["discarded_attempts"]))
        passes.append(one)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"argv": list(argv or []), "modes": modes, "passes": passes}
    (RESULTS / f"{NAME}.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / f"{NAME}.md").write_text(markdown(passes, modes, args))
    log(f"wrote {RESULTS / f'{NAME}.md'}")
    return out


def markdown(passes: list[dict[str, dict[str, float]]], modes: list[str], args: Any) -> str:
    base = modes[0]

    def med(mode: str, key: str) -> float:
        return median([p[mode][key] for p in passes])

    def ratio(mode: str, key: str) -> float:
        return median([p[mode][key] / p[base][key] for p in passes if p[base][key]])

    lines = [
        "# Acknowledgements: what they cost end to end",
        "",
        f"`python -m bench.acks{' --quick' if args.quick else ''} --rounds {args.rounds or 1} "
        f"--passes {args.passes} --vhost {args.vhost}`: bench/end_to_end.py (commit at PARIS "
        "-> visible at LONDON, MADRID and PARIS's archive; bridges as `bridge run` "
        "subprocesses) once per mode per pass, the order alternating. Medians over the "
        f"passes; ratios are per pass against `{base}` in the same pass, then their median.",
        "",
        f"| acks | events/s end to end | ratio to {base} | e2e / writer alone | "
        f"p50 ms at 200/s | p50 ratio | p99 ms | p99 ratio | writer alone /s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in modes:
        lines.append(
            f"| {mode} | {med(mode, 'e2e_per_s'):.0f} | {ratio(mode, 'e2e_per_s'):.2f} | "
            f"{med(mode, 'throughput_ratio'):.2f} | {med(mode, 'latency_p50_ms'):.1f} | "
            f"{ratio(mode, 'latency_p50_ms'):.2f} | {med(mode, 'latency_p99_ms'):.1f} | "
            f"{ratio(mode, 'latency_p99_ms'):.2f} | {med(mode, 'solo_writer_per_s'):.0f} |"
        )
    lines += [
        "",
        "Per pass (events/s end to end, p50 ms, p99 ms, writer alone /s, runs redone):",
        "",
    ]
    for n, p in enumerate(passes, 1):
        cells = "; ".join(
            f"{m} {p[m]['e2e_per_s']:.0f}/s, {p[m]['latency_p50_ms']:.1f}, "
            f"{p[m]['latency_p99_ms']:.1f}, {p[m]['solo_writer_per_s']:.0f}/s, "
            f"{p[m]['redone']:.0f}"
            for m in p
        )
        lines.append(f"- pass {n}: {cells}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
