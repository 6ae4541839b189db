"""The ports' contracts against the fakes and the real adapters that need no service (Redis: integration)."""

from __future__ import annotations

from streamrag.connectors.sentence_embedder import SentenceTransformerEmbedder
from streamrag.core.ports import Embedder, PayloadStore
from tests.contracts import EmbedderContract, PayloadStoreContract
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
