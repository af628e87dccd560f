"""Observing the world: Prometheus queries (batched per cycle) and the PromQL they use."""
