"""The embedded path: the same ingest dataflow over records (files, a corpus), with no Kafka."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main

from streamrag.connectors.files import Refused, records_from_paths
from streamrag.core.errors import StreamragError
from streamrag.core.ingest.stages import IngestStages
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.flows.index_views import IndexViews
from streamrag.flows.ingest import build_flow
from streamrag.schemas.models import DeadLetter, IndexEvent


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
    """Hands every output batch to a function (the embedded path's report, tests)."""

    def __init__(self, fn: Callable[[list[Any]], None]) -> None:
        self.fn = fn

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CallbackPartition:
        return _CallbackPartition(self.fn)


def ingest_records(
    settings: Settings,
    records: Iterable[RawRecord],
    on_progress: Callable[[int], None] | None = None,
    stages: IngestStages | None = None,
) -> IngestReport:
    """Run the ingest dataflow over records; ``stages`` overrides the ones built from settings."""
    report = IngestReport()

    def collect(items: list[Any]) -> None:
        for it in items:
            (report.events if isinstance(it, IndexEvent) else report.dead).append(it)
        if on_progress:
            on_progress(len(items))

    flow = build_flow(
        settings,
        source=TestingSource(records, batch_size=settings.worker.source_batch_size),
        sink=CallbackSink(collect),
        stages=stages,
    )
    run_main(flow)
    return report


def index_paths(
    settings: Settings, paths: list[Path], tenant: str, on_progress: Callable[[int], None] | None = None,
    refused: Refused | None = None,
) -> IngestReport:
    """``streamrag ingest``: files -> the ingest dataflow -> the local index, then index upkeep
    (the embedded path has no maintenance thread: FTS and optimize run once, here). Written to the active
    index version, as the workers write. ``refused``: told of each file or line refused before it is read
    (connectors.files), else that is an error."""
    records = records_from_paths(  # read as the flow takes them; a JSONL line at most a message
        paths, tenant, settings.index.max_doc_bytes, refused=refused, max_line_bytes=settings.json_limits.max_bytes,
        max_uncompressed=settings.index.max_uncompressed_bytes)
    first = next(records, None)
    if first is None:
        raise StreamragError("no .txt, .md, .rst, .pdf, .docx, .html or .jsonl files found in the given paths")
    records = itertools.chain([first], records)
    views = IndexViews(settings)
    name, stages = views.target()
    report = ingest_records(settings, records, on_progress=on_progress, stages=stages)
    views.view(name).store.maintain(force=True)
    return report
