"""Uploads waiting for their documents to be applied (``POST /v1/documents?wait=S``), without a thread each.

One reader thread per gateway follows the index-events topic (from its end when first needed) and hands each
event to the waits that expect it; a waiting request awaits an ``asyncio.Event`` in the event loop, so a
thousand waits hold no thread and cannot starve the routes that need one (``/readyz``, ``GET /v1/documents``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from streamrag.connectors.kafka_index_events import IndexEventWatcher
from streamrag.core.settings import Settings

log = logging.getLogger(__name__)


class Wait:
    """One request's expected (tenant/doc_id -> version) and the statuses seen so far; ``done`` once all are."""

    def __init__(self, expected: Mapping[str, int], loop: asyncio.AbstractEventLoop) -> None:
        self.expected = dict(expected)
        self.loop = loop
        self.seen: dict[str, str] = {}
        self.done = asyncio.Event()

    def saw(self, key: str, status: str) -> None:
        """In the event loop: one expected document applied."""
        self.seen[key] = status
        if len(self.seen) >= len(self.expected):
            self.done.set()

    def missing(self) -> list[str]:
        return sorted(set(self.expected) - set(self.seen))


class IndexWaits:
    """The waits of this process by document key, fed index events by ``feed`` (from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, list[Wait]] = {}

    def expect(self, expected: Mapping[str, int]) -> Wait:
        """Register a wait (before its documents are sent, so no event is missed); ``forget`` it when done."""
        w = Wait(expected, asyncio.get_running_loop())
        with self._lock:
            for key in w.expected:
                self._by_key.setdefault(key, []).append(w)
        return w

    def forget(self, w: Wait) -> None:
        with self._lock:
            for key in w.expected:
                left = [x for x in self._by_key.get(key, []) if x is not w]
                if left:
                    self._by_key[key] = left
                else:
                    self._by_key.pop(key, None)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len({id(w) for ws in self._by_key.values() for w in ws})

    def feed(self, event: Mapping[str, Any]) -> None:
        """An index event: every wait expecting its document at this version or an older one learns its status."""
        key = f"{event.get('tenant')}/{event.get('doc_id')}"
        try:
            version = int(event.get("version", -1))
        except (TypeError, ValueError):
            return
        with self._lock:
            hits = [w for w in self._by_key.get(key, []) if version >= w.expected[key]]
        for w in hits:
            try:
                w.loop.call_soon_threadsafe(w.saw, key, str(event.get("status")))
            except RuntimeError:  # its event loop is closed: nobody waits any more
                continue


class IndexEventReader:
    """The thread that reads the index-events topic into an ``IndexWaits`` (started when first needed)."""

    def __init__(self, s: Settings, waits: IndexWaits) -> None:
        self.s = s
        self.waits = waits
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def ensure_started(self) -> None:
        """Blocking (a metadata request): call it from a worker thread."""
        with self._starting:
            if self._thread is not None:
                return
            watcher = IndexEventWatcher(self.s.kafka, self.s.topics)  # assigned at the topic's end: only events from now on
            self._thread = threading.Thread(target=self._run, args=(watcher,), name="gateway-index-events",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, watcher: IndexEventWatcher) -> None:
        c = watcher.c
        try:
            while not self._stop.is_set():
                try:
                    msgs = c.consume(200, 0.2)
                except Exception as exc:  # a broker hiccup: try again, the waits time out on their own
                    log.warning("reading index events failed: %s", exc)
                    self._stop.wait(0.5)
                    continue
                for m in msgs:
                    value = m.value()
                    if m.error() is not None or not value:
                        continue
                    try:
                        ev = json.loads(value)
                    except ValueError:
                        continue
                    if isinstance(ev, dict):
                        self.waits.feed(ev)
        finally:
            c.close()
