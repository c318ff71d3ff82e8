"""py-spy sampling of running processes, summarised as Markdown next to the raw stacks.

`python -m bench.end_to_end --profile` samples each bridge process during round 1; the
raw collapsed stacks (`*.txt`, for flamegraph.pl or speedscope) and a summary (`*.md`:
active share of each thread, functions by own and by inclusive samples) land in
`bench/results/profile/`. In the throughput run only samples of threads that are running
count (py-spy's idle filter: a CPU view; the thread rows say how busy each thread was); in
the latency run waiting threads are sampled too (a wall-time view: where an event waits).
Also: `python -m bench.profile summarize FILE.txt SECONDS [RATE]`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import log

RATE = 100  # samples per second
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::\d+)?\)$")
_BOOT = (
    "Thread._bootstrap",
    "Thread._bootstrap_inner",
    "Thread.run",
    "<module>",
    "_run_module_as_main",
    "_run_code",
)


@dataclass
class Spy:
    name: str
    raw: Path
    seconds: float
    proc: subprocess.Popen[bytes]
    idle: bool = False


def pyspy() -> str | None:
    exe = Path(sys.executable).with_name("py-spy")
    return str(exe) if exe.exists() else shutil.which("py-spy")


def start(
    pids: dict[str, int], seconds: float, out_dir: Path | None, label: str, idle: bool = False
) -> list[Spy]:
    """Start sampling each pid for `seconds` (nothing if out_dir is None or no py-spy);
    with `idle`, waiting threads are sampled too (a wall-time view instead of a CPU one)."""
    if out_dir is None:
        return []
    exe = pyspy()
    if exe is None:
        log("py-spy not found: pip install py-spy into the venv to profile")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    spies = []
    for site, pid in pids.items():
        name = f"e2e_{label}_{site.lower()}"
        raw = out_dir / f"{name}.txt"
        cmd = [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(RATE),
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
            "--output",
            str(raw),
            *(["--idle"] if idle else []),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spies.append(Spy(name, raw, max(1, round(seconds)), proc, idle))
    return spies


def finish(spies: Sequence[Spy]) -> None:
    for spy in spies:
        try:
            spy.proc.wait(spy.seconds + 30)
        except subprocess.TimeoutExpired:
            spy.proc.terminate()
            spy.proc.wait()
        if spy.raw.exists():
            md = spy.raw.with_suffix(".md")
            view = "wall time (idle samples included)" if spy.idle else "CPU (busy samples)"
            md.write_text(summarize(spy.raw, spy.seconds, RATE, f"{spy.name}, {view}"))


def _key(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    file = m["file"]
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m['func']} ({file})"


def summarize(raw: Path, seconds: float, rate: int = RATE, title: str = "") -> str:
    per_thread: Counter[str] = Counter()
    own: dict[str, Counter[str]] = defaultdict(Counter)
    inclusive: dict[str, Counter[str]] = defaultdict(Counter)
    for line in raw.read_text().splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        count = int(m["count"])
        frames = m["stack"].split(";")
        thread = re.sub(r"^thread \(\d+\): ?", "", frames[0]) or "main"
        stack = [_key(f) for f in frames[1:] if f.split(" (")[0] not in _BOOT]
        per_thread[thread] += count
        if stack:
            own[thread][stack[-1]] += count
            for k in set(stack):
                inclusive[thread][k] += count
    total = seconds * rate
    lines = [
        f"# py-spy: {title or raw.stem}",
        "",
        f"{seconds:.0f} s at {rate} Hz ({total:.0f} possible samples per thread); "
        f"raw stacks: {raw.name}",
        "",
    ]
    lines += ["| thread | active samples | share of the run |", "|---|---|---|"]
    for thread, n in per_thread.most_common():
        lines.append(f"| {thread} | {n} | {100 * n / total:.1f}% |")
    for thread, n in per_thread.most_common(4):
        lines += ["", f"## {thread}", "", "| own | inclusive | function |", "|---|---|---|"]
        top = sorted(inclusive[thread].items(), key=lambda kv: -kv[1])[:18]
        for func, inc in top:
            lines.append(
                f"| {100 * own[thread][func] / n:.1f}% | {100 * inc / n:.1f}% | `{func}` |"
            )
        lines += ["", "Most own time:", ""]
        for func, c in own[thread].most_common(8):
            lines.append(f"- {100 * c / n:.1f}% `{func}`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "summarize":
        print(
            summarize(
                Path(sys.argv[2]),
                float(sys.argv[3]),
                int(sys.argv[4]) if len(sys.argv) > 4 else RATE,
            )
        )
    else:
        print(__doc__)
