"""What acknowledgements cost end to end: bench/end_to_end.py with the bridges' `acks`
off, direct and topic, in one invocation, then the figures side by side in results/acks.md.

    python -m bench.acks [--quick] [--rounds R] [--passes P] [--vhost V] [--modes off,direct,topic]

Each pass runs every mode once (a whole end_to_end run: its own databases, queues and
`--rounds` rounds, 1 by default here), the order reversed from one pass to the next
(bench/variants.py). Load from outside moves every figure on a shared machine; what is
compared is, per pass, each mode against `off` in the same pass (its ratio), and the
median of those ratios over the passes. The rate of the writer alone, measured in each
run, shows how loaded the machine was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.common import parser
from bench.variants import common_args, comparison, per_pass, run_passes, write

NAME = "acks"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or NAME)
    p.add_argument("--modes", default="off,direct,topic", help="acks modes (the first: baseline)")
    p.add_argument("--passes", type=int, default=2, help="runs of every mode, order alternating")
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    passes = run_passes(NAME, {m: ["--acks", m] for m in modes}, common_args(args), args.passes)
    out = {"argv": list(argv or []), "modes": modes, "passes": passes}
    write(NAME, out, markdown(passes, modes, args))
    return out


def markdown(passes: list[dict[str, dict[str, float]]], modes: list[str], args: Any) -> str:
    lines = [
        "# Acknowledgements: what they cost end to end",
        "",
        f"`python -m bench.acks{' --quick' if args.quick else ''} --rounds {args.rounds or 1} "
        f"--passes {args.passes} --vhost {args.vhost}`: bench/end_to_end.py (commit at PARIS "
        "-> visible at LONDON, MADRID and PARIS's archive; bridges as `bridge run` "
        "subprocesses) once per mode per pass, the order alternating. Medians over the "
        f"passes; ratios are per pass against `{modes[0]}` in the same pass, then their median.",
        "",
        *comparison(passes, modes, "acks"),
        "",
        "Per pass (events/s end to end, p50 ms, p99 ms, writer alone /s, runs redone):",
        "",
        *per_pass(passes),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
