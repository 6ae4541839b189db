from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.ingest.changes import Output
from streamrag.core.ingest.stages import IngestStages
from streamrag.core.ports import Embedder
from streamrag.core.query.processor import QueryProcessor
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.flows.components import make_extractors, make_query_processor
from tests.fakes import HashEmbedder


class Indexer:
    """The ingest stages in-process, then index upkeep (what the maintenance thread does)."""

    def __init__(self, settings: Settings, store: LanceStore, embedder: Embedder | None = None) -> None:
        self.store = store
        self.stages = IngestStages.from_settings(settings, store, embedder or HashEmbedder(),
                                                 extractors=make_extractors(settings.index))

    def process_batch(self, records: Sequence[RawRecord]) -> list[Output]:
        out = self.stages.process_batch(records)
        if any(getattr(o, "status", "") in ("indexed", "deleted") for o in out):
            self.store.maintain(force=True)
        return out


def query_processor(settings: Settings, store: LanceStore, embedder: Embedder, **kw: Any) -> QueryProcessor:
    qp = make_query_processor(settings, embedder=embedder, store=store)
    for k, v in kw.items():
        setattr(qp, k, v)
    return qp


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(lancedb_uri=str(tmp_path / "db"), generator="extractive", chunk_size=20, chunk_overlap=4, retry_max_s=2, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def store(settings: Settings) -> LanceStore:
    return LanceStore(settings.lancedb_path(), fts_rebuild_every_s=0)


@pytest.fixture
def processor(settings: Settings, store: LanceStore) -> Indexer:
    return Indexer(settings, store)


def change(doc_id: str, version: int = 1, text: str = "", tenant: str = "acme", op: str = "upsert", **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"op": op, "tenant": tenant, "doc_id": doc_id, "version": version, "text": text, **kw}
    return d


def rec(obj: Any, key: bytes = b"k") -> RawRecord:
    value = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return RawRecord(value=value, key=key)


@pytest.fixture
def run(processor: Indexer) -> Callable[..., list[Any]]:
    def _run(*objs: Any) -> list[Any]:
        return processor.process_batch([rec(o) for o in objs])

    return _run
