"""The ingest stages of the active index version: each record's target version is fixed when it is
parsed, and every later stage runs that version's stages (its chunking, model and store) on it.

A promote between two batches sends the next batch to the new version; no record is chunked for
one version and written to another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from streamrag.core.ingest.changes import Item, Pending
from streamrag.core.ingest.stages import IngestStages
from streamrag.core.records import RawRecord

Stage = Callable[[Sequence[Item]], list[Item]]


class IngestSteps(Protocol):
    """The named ingest stages, as the ingest flow runs them."""

    def parse(self, records: Sequence[RawRecord]) -> list[Item]: ...
    def redact(self, items: Sequence[Item]) -> list[Item]: ...
    def newest(self, items: Sequence[Item]) -> list[Item]: ...
    def stale_check(self, items: Sequence[Item]) -> list[Item]: ...
    def chunk(self, items: Sequence[Item]) -> list[Item]: ...
    def embed(self, items: Sequence[Item]) -> list[Item]: ...
    def write(self, items: Sequence[Item]) -> list[Item]: ...


class RoutedStages:
    def __init__(self, target: Callable[[], tuple[str, IngestStages]], stages_of: Callable[[str], IngestStages]) -> None:
        self.target = target
        self.stages_of = stages_of

    def parse(self, records: Sequence[RawRecord]) -> list[Item]:
        name, stages = self.target()
        items = stages.parse(records)
        for i in items:
            if isinstance(i, Pending):
                i.index = name
        return items

    def _routed(self, stage: str, items: Sequence[Item]) -> list[Item]:
        out: list[Item] = []
        groups: dict[str, list[Item]] = {}
        for i in items:
            if isinstance(i, Pending):
                groups.setdefault(i.index, []).append(i)
            else:
                out.append(i)
        for name, group in groups.items():
            fn: Stage = getattr(self.stages_of(name), stage)
            out.extend(fn(group))
        return out

    def redact(self, items: Sequence[Item]) -> list[Item]:
        return self._routed("redact", items)

    def newest(self, items: Sequence[Item]) -> list[Item]:
        return self._routed("newest", items)

    def stale_check(self, items: Sequence[Item]) -> list[Item]:
        return self._routed("stale_check", items)

    def chunk(self, items: Sequence[Item]) -> list[Item]:
        return self._routed("chunk", items)

    def embed(self, items: Sequence[Item]) -> list[Item]:
        return self._routed("embed", items)

    def write(self, items: Sequence[Item]) -> list[Item]:
        return self._routed("write", items)
