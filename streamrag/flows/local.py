"""The embedded path: the same ingest dataflow over files, with no Kafka."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main

from streamrag.schemas.models import DeadLetter, IndexEvent
from streamrag.core.ingest.processor import IngestProcessor, RawRecord
from streamrag.core.settings import Settings


@dataclass
class IngestReport:
    events: list[IndexEvent] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.events:
            out[e.status] = out.get(e.status, 0) + 1
        out["dead_letters"] = len(self.dead)
        out["chunks"] = sum(e.chunk_count for e in self.events if e.status == "indexed")
        return out


class _CallbackPartition(StatelessSinkPartition[Any]):
    def __init__(self, fn: Callable[[list[Any]], None]) -> None:
        self.fn = fn

    def write_batch(self, items: list[Any]) -> None:
        self.fn(items)


class CallbackSink(DynamicSink[Any]):
    def __init__(self, fn: Callable[[list[Any]], None]) -> None:
        self.fn = fn

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CallbackPartition:
        return _CallbackPartition(self.fn)


def ingest_records(
    settings: Settings,
    records: Iterable[RawRecord],
    on_progress: Callable[[int], None] | None = None,
    processor: IngestProcessor | None = None,
) -> IngestReport:
    """Run the ingest dataflow over records; ``processor`` overrides the one built from settings."""
    from streamrag.flows.ingest import build_flow

    report = IngestReport()

    def collect(items: list[Any]) -> None:
        for it in items:
            (report.events if isinstance(it, IndexEvent) else report.dead).append(it)
        if on_progress:
            on_progress(len(items))

    flow = build_flow(
        settings,
        source=TestingSource(list(records), batch_size=settings.source_batch_size),
        sink=CallbackSink(collect),
        processor=processor,
    )
    run_main(flow)
    return report
