"""Per-tenant daily token totals in Redis, shared by every query worker (kept three days)."""

from __future__ import annotations

from streamrag.connectors.redis_cache import RedisCache

_KEEP_S = 3 * 86_400


class RedisUsageLedger:
    def __init__(self, redis: RedisCache, prefix: str = "streamrag:usage:") -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, tenant: str, day: str) -> str:
        return f"{self.prefix}{tenant}:{day}"

    def add(self, tenant: str, day: str, tokens: int) -> int:
        key = self._key(tenant, day)

        def incr(r: object) -> int:
            pipe = r.pipeline()  # type: ignore[attr-defined]
            pipe.incrby(key, tokens)
            pipe.expire(key, _KEEP_S)
            return int(pipe.execute()[0])

        return int(self.redis.run(incr, 0))

    def used(self, tenant: str, day: str) -> int:
        """Tokens used that day (0 while Redis is down: budgets fail open, answers keep coming)."""
        return int(self.redis.run(lambda r: r.get(self._key(tenant, day)) or 0, 0))
