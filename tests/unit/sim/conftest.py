"""pytest configuration for the simulator's unit tests.

Helpers live in ``sim_helpers.py`` (this directory is on sys.path under pytest's default
import mode), so test modules can import them by name.
"""
