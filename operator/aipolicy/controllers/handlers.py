"""Registers every kopf handler of the operator (importing a module registers its handlers)."""

from aipolicy.controllers import budget, connections, fallback, indexes, inferenceservice, startup

__all__ = ["budget", "connections", "fallback", "indexes", "inferenceservice", "startup"]
