"""Provider API keys, read only from the Secrets the namespace's objects name.

Two sources, tried in order:

* a mounted folder (``--secrets-dir``): ``<dir>/<secret>/apiKey``, as a Secret volume lays it
  out. The operator's gateway Deployment mounts each referenced Secret (optional: true), so
  the gateway needs no Secret permission at all;
* the API, ``get`` of one named Secret (no list, no watch), allowed by a Role whose
  ``resourceNames`` are exactly the referenced Secrets. Cached for ``ttl_s``, so a rotated key
  is picked up within that time.

A key is never logged, labelled or returned in an error: errors name the Secret only.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["KEY_FIELD", "MissingSecretError", "SecretReader", "problem_reason"]

KEY_FIELD = "apiKey"


def problem_reason(problem: str) -> str:
    """The CamelCase reason of a problem message (the label the gateway exports and the
    InferenceService condition's reason): the Secret is absent, or lacks a usable key."""
    if "does not exist" in problem or "is not mounted" in problem:
        return "SecretNotFound"
    if "key" in problem:
        return "SecretKeyMissing"
    return "SecretUnreadable"


class MissingSecretError(Exception):
    """The Secret (or its apiKey) is not there; the message names it, never a value."""


@dataclass
class _Cached:
    value: str | None
    problem: str | None
    at: float


class SecretReader:
    def __init__(
        self, namespace: str, *, folder: Path | None = None, core_api: Any = None, ttl_s: float = 10.0
    ) -> None:
        self.namespace = namespace
        self.folder = folder
        self.core_api = core_api
        self.ttl_s = ttl_s
        self._cache: dict[str, _Cached] = {}

    async def key(self, secret: str) -> str:
        cached = self._cache.get(secret)
        if cached is None or time.monotonic() - cached.at > self.ttl_s:
            value, problem = await self._read(secret)
            cached = self._cache[secret] = _Cached(value, problem, time.monotonic())
        if cached.value is None:
            raise MissingSecretError(cached.problem or f"Secret {self.namespace}/{secret} is missing")
        return cached.value

    async def problem(self, secret: str) -> str | None:
        """What is wrong with the Secret (its name, never its value), or None when usable."""
        try:
            await self.key(secret)
        except MissingSecretError as missing:
            return str(missing)
        return None

    async def _read(self, secret: str) -> tuple[str | None, str | None]:
        where = f"Secret {self.namespace}/{secret}"
        if self.folder is not None:
            path = self.folder / secret / KEY_FIELD
            if path.is_file():
                value = path.read_text().strip()
                return (value, None) if value else (None, f"{where} has an empty key {KEY_FIELD}")
        if self.core_api is None:
            return None, f"{where} is not mounted into the gateway"
        try:
            obj = await asyncio.to_thread(self.core_api.read_namespaced_secret, secret, self.namespace)
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status == 404:
                return None, f"{where} does not exist"
            if status == 403:
                return None, f"{where} is not readable by the gateway (no Role names it)"
            return None, f"{where} could not be read ({type(exc).__name__})"
        raw = (obj.data or {}).get(KEY_FIELD)
        if not raw:
            return None, f"{where} has no key {KEY_FIELD}"
        value = base64.b64decode(raw).decode().strip()
        if not value or any(c in value for c in "\r\n"):
            return None, f"{where} key {KEY_FIELD} is empty or not a single line"
        return value, None
