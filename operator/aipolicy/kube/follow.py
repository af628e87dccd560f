"""Following one kind of object: list, then watch from the list's resourceVersion, in a thread.

Shared by the gateway (its namespace's InferenceServices, policies, budgets and pods) and the
simulator (every labelled pod). The kubernetes client blocks, so :class:`ListWatch` runs in a
thread and hands what it sees to two callbacks: ``on_list`` with every object after each
list, ``on_event`` with each ADDED, MODIFIED or DELETED event. The watch's own timeout
resumes from the last resourceVersion seen; an expired one (410 Gone, or an ERROR event) and
any other failure list again, so a deletion missed in between is not lost. Failures back off
(doubling up to a bound); :meth:`ListWatch.stop` ends it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

__all__ = ["ListWatch", "WatchLike"]

log = logging.getLogger(__name__)

_GONE = 410


class WatchLike(Protocol):
    def stream(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Any]: ...
    def stop(self) -> None: ...


def _items_and_version(result: Any) -> tuple[list[Any], str]:
    """A list call's objects and resourceVersion: typed models, or plain dicts (custom objects)."""
    if isinstance(result, dict):
        return list(result.get("items") or []), str(result["metadata"]["resourceVersion"])
    return list(result.items), str(result.metadata.resource_version)


class ListWatch:
    """List-then-watch of one ``list_*`` call; bounded by a stop event, backs off on errors."""

    def __init__(
        self,
        list_func: Callable[..., Any],
        args: tuple[Any, ...],
        on_list: Callable[[list[Any]], None],
        on_event: Callable[[str, Any], None],
        *,
        what: str,
        label_selector: str | None = None,
        watch_factory: Callable[[], WatchLike] = k8s_watch.Watch,
        timeout_seconds: int = 60,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.list_func = list_func
        self.args = args
        self.on_list = on_list
        self.on_event = on_event
        self.what = what
        self.kwargs: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        self.watch_factory = watch_factory
        self.timeout_seconds = timeout_seconds
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.relists = 0
        self._stop = threading.Event()
        self._watch: WatchLike | None = None

    def stop(self) -> None:
        self._stop.set()
        w = self._watch
        if w is not None:
            w.stop()

    def relist(self) -> str:
        """List every object, hand them to ``on_list``, return the resourceVersion."""
        items, rv = _items_and_version(self.list_func(*self.args, **self.kwargs))
        self.on_list(items)
        self.relists += 1
        return rv

    def _watch_once(self, rv: str) -> str | None:
        """Watch from ``rv``; return the last resourceVersion, or None to re-list."""
        w = self._watch = self.watch_factory()
        try:
            for event in w.stream(
                self.list_func,
                *self.args,
                resource_version=rv,
                timeout_seconds=self.timeout_seconds,
                allow_watch_bookmarks=True,
                **self.kwargs,
            ):
                if self._stop.is_set():
                    return rv
                kind = event.get("type")
                raw = event.get("raw_object") or {}
                if kind == "ERROR":  # 410 Gone or another failure: start again from a list
                    log.info("%s watch error event (code %s); re-listing", self.what, raw.get("code"))
                    return None
                new_rv = (raw.get("metadata") or {}).get("resourceVersion")
                if new_rv:
                    rv = str(new_rv)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self.on_event(str(kind), event.get("object"))
        except ApiException as exc:
            if exc.status == _GONE:
                log.info("%s watch expired (410 Gone); re-listing", self.what)
                return None
            raise
        finally:
            self._watch = None
        return rv

    def run(self) -> None:
        """Follow until :meth:`stop`. Errors are logged and retried with backoff."""
        backoff = self.backoff_s
        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self.relist()
                rv = self._watch_once(rv)
                backoff = self.backoff_s
            except Exception:  # the API server may be restarting; keep following
                log.exception("%s watch failed; re-listing in %.1fs", self.what, backoff)
                rv = None
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self.max_backoff_s)

    def start_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.run, name=f"aipolicy-watch-{self.what}", daemon=True)
        t.start()
        return t
