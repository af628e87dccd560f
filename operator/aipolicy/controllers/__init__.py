"""The thin shell: kopf handlers that read the world, call the pure policy, and apply results.

Importing :mod:`aipolicy.controllers.handlers` registers every handler with kopf.
"""
