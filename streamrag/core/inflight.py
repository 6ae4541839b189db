"""Which offsets may be committed when records finish out of order.

A record is *taken* when the source reads it and *done* when its outputs have been flushed. The offset
committed for a partition moves only past the contiguous prefix of done records: one record still in
flight holds back every later one, so a worker killed with answers in flight re-reads them all after
its restart (at-least-once), never skips one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from streamrag.core.ports import Position

TopicPart = tuple[str, int]


class InFlightOffsets:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[TopicPart, set[int]] = {}
        self._high: dict[TopicPart, int] = {}  # the newest offset taken per partition
        self._committable: dict[TopicPart, int] = {}

    def taken(self, positions: Iterable[Position]) -> None:
        with self._lock:
            for topic, part, off in positions:
                tp = (topic, part)
                self._pending.setdefault(tp, set()).add(off)
                self._high[tp] = max(self._high.get(tp, -1), off)
                self._committable.setdefault(tp, off - 1)  # nothing before the first record read is ours

    def done(self, positions: Iterable[Position]) -> list[Position]:
        """Mark records done; returns, per partition that moved, the last offset of its done prefix."""
        moved: list[Position] = []
        with self._lock:
            touched: set[TopicPart] = set()
            for topic, part, off in positions:
                tp = (topic, part)
                pend = self._pending.get(tp)
                if pend is not None and off in pend:
                    pend.discard(off)
                    touched.add(tp)
            for tp in touched:
                pend = self._pending[tp]
                last = min(pend) - 1 if pend else self._high[tp]
                if last > self._committable.get(tp, -1):
                    self._committable[tp] = last
                    moved.append((tp[0], tp[1], last))
        return moved

    def in_flight(self) -> int:
        with self._lock:
            return sum(len(p) for p in self._pending.values())
