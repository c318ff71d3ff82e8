"""Benchmarks of bridge: capture triggers, the dispatcher and the whole path end to end.

Every figure is a ratio against a baseline measured in the same run on the same machine,
baseline and subject interleaved round by round; results go to `bench/results/`.
Run `python -m bench --quick` (all, about 3 minutes) or one of `python -m bench.capture`,
`python -m bench.dispatcher`, `python -m bench.end_to_end`; see bench/README.md.
"""
