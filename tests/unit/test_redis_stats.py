"""Worker cache statistics in Redis are kept under the deployment's STREAMRAG_CACHE_REDIS_PREFIX."""

from __future__ import annotations

import re
from typing import Any

from streamrag.connectors.redis_cache import redis_for
from streamrag.core.settings import Settings


class DictRedis:
    """The few Redis calls the statistics use, over a dict (SCAN patterns: an escaped prefix and '*')."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def set(self, key: str, value: str, ex: int | None = None) -> None:
        self.data[key.encode()] = value.encode()

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def scan_iter(self, pattern: str, count: int = 10) -> list[bytes]:
        assert pattern.endswith("*")
        head = re.sub(r"\\(.)", r"\1", pattern[:-1])  # unescaped
        return [k for k in self.data if k.decode().startswith(head)]


def test_status_lists_only_this_deployments_workers(tmp_path: Any) -> None:
    shared = DictRedis()
    clients = {}
    for prefix in ("blue:cache:", "green[1]:cache:"):
        s = Settings(lancedb_uri=str(tmp_path / "db"), cache_redis_prefix=prefix, _env_file=None)  # type: ignore[call-arg]
        clients[prefix] = redis_for(s.redis, s.cache.redis_prefix, timeout_s=0.5, client=shared)  # as ``status``
    clients["blue:cache:"].put_stats("host:1", {"hits": 1}, ttl_s=10)
    clients["green[1]:cache:"].put_stats("host:2", {"hits": 2}, ttl_s=10)
    assert clients["blue:cache:"].all_stats() == {"host:1": {"hits": 1}}
    assert clients["green[1]:cache:"].all_stats() == {"host:2": {"hits": 2}}


def test_a_tenants_cache_keys_are_not_statistics(tmp_path: Any) -> None:
    s = Settings(lancedb_uri=str(tmp_path / "db"), _env_file=None)  # type: ignore[call-arg]
    shared = DictRedis()
    r = redis_for(s.redis, s.cache.redis_prefix, client=shared)
    shared.set(r.key("stats", "abc"), "{}")  # a tenant named like the statistics
    r.put_stats("host:1", {"hits": 3}, ttl_s=10)
    assert r.all_stats() == {"host:1": {"hits": 3}}
