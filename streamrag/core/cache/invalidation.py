"""Which cache entries are known current, and the index events that may overtake an answer being built.

- An entry this process builds is current when stored, unless an index event newer than one of its
  cited versions arrived while it was built (``overtaken``): then it must not be stored.
- Entries rebuilt from the topic or read from Redis are *pending* until checked against the index
  (in bulk by the follower, or on their first hit); after that index events keep them current.
- Event memory is bounded: past ``seen_max`` it is forgotten, and entries whose answer started
  before that moment are treated as pending (checked on their first hit) instead of current.
"""

from __future__ import annotations

import time
from collections.abc import Iterable


class InvalidationTracker:
    def __init__(self, race_window_s: float = 300.0, seen_max: int = 200_000) -> None:
        self.race_window_s = race_window_s
        self.seen_max = seen_max
        self.verified: set[str] = set()
        self.pending: set[str] = set()
        # (tenant, doc_id) -> (newest version seen in index events, when)
        self.seen: dict[tuple[str, str], tuple[int, float]] = {}
        self._pruned_at = 0.0
        self.lost_at = 0.0  # when event memory last overflowed

    def note_event(self, tenant: str, doc_id: str, version: int) -> None:
        now = time.time()
        prev = self.seen.get((tenant, doc_id))
        self.seen[(tenant, doc_id)] = (max(version, prev[0]) if prev else version, now)
        if len(self.seen) > 10_000 and now - self._pruned_at > 10:
            self._pruned_at = now
            self.seen = {k: v for k, v in self.seen.items() if now - v[1] < self.race_window_s}
        if len(self.seen) > self.seen_max:
            # A reindex storm: forget, and let entries built meanwhile be checked on their first hit.
            self.seen.clear()
            self.lost_at = now

    def overtaken(self, tenant: str, cites: Iterable[tuple[str, int]]) -> bool:
        """True when an index event newer than a cited version has been seen."""
        for doc_id, version in cites:
            seen = self.seen.get((tenant, doc_id))
            if seen is not None and seen[0] > version:
                return True
        return False

    def built_current(self, started: float | None) -> bool:
        """Whether an answer whose retrieval started at ``started`` counts as current when stored."""
        return started is not None and time.time() - started < self.race_window_s and started > self.lost_at

    def mark(self, key: str, verified: bool, checkable: bool) -> None:
        """Record a new entry: verified, or pending a check (when there is a way to check)."""
        if verified:
            self.verified.add(key)
            self.pending.discard(key)
        elif key not in self.verified and checkable:
            self.pending.add(key)

    def confirm(self, key: str) -> None:
        self.verified.add(key)
        self.pending.discard(key)

    def take_pending(self, limit: int) -> list[str]:
        keys = [k for _, k in zip(range(limit), self.pending, strict=False)]
        self.pending.difference_update(keys)
        return keys

    def forget(self, key: str) -> None:
        self.verified.discard(key)
        self.pending.discard(key)
