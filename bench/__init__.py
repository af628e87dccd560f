"""Benchmarks: `python -m bench` (pure core, simulator), `python -m bench.budget_eval`,
`python -m bench.fallback_switch` (live cluster)."""
