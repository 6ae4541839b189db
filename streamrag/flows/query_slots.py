"""The query flow's second input: answers (and their deltas) as the generation slots write them.

A bytewax source per worker that hands on what the slots have finished for that worker thread, every
few milliseconds; it never ends (the flow runs until it is stopped).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import DynamicSource, StatelessSourcePartition

_POLL = timedelta(milliseconds=5)


class _Results(StatelessSourcePartition[Any]):
    def __init__(self, drain: Callable[[], list[Any]]) -> None:
        self._drain = drain
        self._empty = False

    def next_batch(self) -> list[Any]:
        out = self._drain()
        self._empty = not out
        return out

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + _POLL if self._empty else None


class SlotResults(DynamicSource[Any]):
    def __init__(self, drain: Callable[[], list[Any]]) -> None:
        self._drain = drain

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Results:
        return _Results(self._drain)
