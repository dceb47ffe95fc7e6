"""ccm-tui benchmark suite: a fast mock upstream, a load generator, scenarios (a)-(f) and a report.

Run `python -m bench.run --quick` (about a minute and a half) or `python -m bench.run` (the full suite).
Each process has one job: `bench.mock_upstream` serves, `bench.loadgen` drives and measures, `bench.run`
orchestrates and writes `bench/results/latest.{md,json}`. See bench/README.md.
"""
