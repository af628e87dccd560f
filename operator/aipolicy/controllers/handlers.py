"""Registers every kopf handler of the operator (importing a module registers its handlers)."""

from aipolicy.controllers import budget, fallback, indexes, inferenceservice, startup

__all__ = ["budget", "fallback", "indexes", "inferenceservice", "startup"]
