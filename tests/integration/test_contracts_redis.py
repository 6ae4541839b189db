"""The payload-store contract against the real Redis adapter (the same tests the in-memory fake passes)."""

from __future__ import annotations

import pytest

from streamrag.connectors.redis_cache import RedisCache
from streamrag.core.ports import PayloadStore
from streamrag.core.settings import Settings
from tests.contracts import PayloadStoreContract

pytestmark = pytest.mark.integration


class TestRedisPayloadStore(PayloadStoreContract):
    @pytest.fixture(autouse=True)
    def _redis(self, settings: Settings) -> None:
        self.url = settings.redis.url

    def make(self) -> PayloadStore:
        return RedisCache(self.url)
