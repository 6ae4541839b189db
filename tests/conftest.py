from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.ingest.processor import IngestProcessor, RawRecord
from streamrag.core.settings import Settings
from tests.fakes import HashEmbedder


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(lancedb_uri=str(tmp_path / "db"), chunk_size=20, chunk_overlap=4, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def store(settings: Settings) -> LanceStore:
    return LanceStore(settings.lancedb_path(), fts_rebuild_every_s=0)


@pytest.fixture
def processor(settings: Settings, store: LanceStore) -> IngestProcessor:
    return IngestProcessor(settings, store, HashEmbedder())


def change(doc_id: str, version: int = 1, text: str = "", tenant: str = "acme", op: str = "upsert", **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"op": op, "tenant": tenant, "doc_id": doc_id, "version": version, "text": text, **kw}
    return d


def rec(obj: Any) -> RawRecord:
    value = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return RawRecord(value=value, key=b"k")


@pytest.fixture
def run(processor: IngestProcessor) -> Callable[..., list[Any]]:
    def _run(*objs: Any) -> list[Any]:
        return processor.process_batch([rec(o) for o in objs])

    return _run
