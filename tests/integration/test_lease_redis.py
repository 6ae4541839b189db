"""The lease contract on the shared Redis (keys of their own), and two maintainer processes on one index:
one maintains, the other skips, and the other takes over when the first stops."""

from __future__ import annotations

import time
import uuid

import pytest

from streamrag.connectors.redis_cache import RedisCache
from streamrag.connectors.redis_lease import RedisLease
from streamrag.core.lease import Lease
from streamrag.core.settings import Settings
from tests.integration.conftest import wait_for
from tests.lease_contract import LeaseContract

pytestmark = pytest.mark.integration


class TestRedisLease(LeaseContract):
    @pytest.fixture(autouse=True)
    def _redis(self, settings: Settings) -> None:
        self.url = settings.redis.url
        self.prefix = f"it-lease-{uuid.uuid4().hex[:8]}:"

    def make(self, name: str, ttl_s: float) -> Lease:
        return RedisLease(RedisCache(self.url, timeout_s=2.0), name, ttl_s, prefix=self.prefix)


def test_a_lease_is_not_held_while_redis_does_not_answer() -> None:
    dead = RedisLease(RedisCache("redis://127.0.0.1:9/0", timeout_s=0.2), "x", 5)  # nothing listens on port 9
    assert not dead.acquire()


def test_two_maintainer_processes_maintain_one_at_a_time(settings: Settings, start_worker) -> None:  # type: ignore[no-untyped-def]
    lease = {"STREAMRAG_MAINTENANCE_LEASE": "redis", "STREAMRAG_MAINTENANCE_LEASE_TTL_S": "60", "STREAMRAG_LOG_LEVEL": "INFO",
             "STREAMRAG_LANCEDB_URI": f"{settings.lancedb_path()}-lease-{uuid.uuid4().hex[:6]}"}
    a = start_worker("maintain", "--every", "0.2", overrides=lease)
    wait_for(lambda: "taken" in a.log.read_text(), timeout=90)  # a holds the lease
    b = start_worker("maintain", "--every", "0.2", overrides=lease)
    wait_for(lambda: "index maintenance running" in b.log.read_text(), timeout=90)
    time.sleep(3)  # b has tried for a while: never taken
    assert "taken" not in b.log.read_text()
    a.kill()  # SIGTERM: a gives the lease up as it stops, long before its 60 s run out
    wait_for(lambda: "taken" in b.log.read_text(), timeout=20)
    assert b.alive()
