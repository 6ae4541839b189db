"""Redis as the shared payload store for cache entries (TTL set on write, never extended by a hit).

Redis being down never fails a query: every call degrades to a miss / no-op, errors are
counted and logged at most once per interval, and calls resume when Redis answers again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from typing import Any

import redis

from streamrag.core.config import RedisConfig

log = logging.getLogger(__name__)
PREFIX = "streamrag:cache:"
_GLOB_SPECIAL = re.compile(r"[*?\[\]\\]")  # escaped in a SCAN pattern
STATS_SUFFIX = ":stats:"  # after the deployment's prefix; no tenant starts with ':', so no cache key is a stats key


class RedisCache:
    def __init__(
        self, url: str, *, retry_after_s: float = 2.0, log_every_s: float = 30.0, timeout_s: float = 0.2,
        prefix: str = PREFIX, password: str | None = None, ssl_ca: str = "", client: Any = None,
    ) -> None:
        """``client``: a redis-py client to use (else one is made from ``url`` on first use)."""
        self.password = password or None
        self.ssl_ca = ssl_ca
        self.url = url
        self.prefix = prefix
        self.retry_after_s = retry_after_s
        self.log_every_s = log_every_s
        self.timeout_s = timeout_s
        self._r: Any = client
        self._down_until = 0.0
        self._last_log = 0.0
        self._lock = threading.Lock()
        self.errors = 0

    @property
    def client(self) -> Any:
        if self._r is None:
            tls = {"ssl_ca_certs": self.ssl_ca} if self.ssl_ca and self.url.startswith("rediss://") else {}
            self._r = redis.Redis.from_url(
                self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s, health_check_interval=10,
                password=self.password, **tls,
            )
        return self._r

    def healthy(self) -> bool:
        return self._call(lambda r: bool(r.ping()), False)

    def run(self, fn: Any, default: Any) -> Any:
        """``fn(client)``, or ``default`` while Redis is down (for other adapters sharing this client)."""
        return self._call(fn, default)

    def _call(self, fn: Any, default: Any) -> Any:
        if time.monotonic() < self._down_until:
            return default
        try:
            return fn(self.client)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self.errors += 1
                self._down_until = time.monotonic() + self.retry_after_s
                now = time.monotonic()
                if now - self._last_log >= self.log_every_s:
                    self._last_log = now
                    log.warning("redis at %s unavailable (%s); cache bypassed (%d errors so far)", self.url, exc, self.errors)
            return default

    def key(self, tenant: str, cache_key: str) -> str:
        return f"{self.prefix}{tenant}:{cache_key}"

    def get(self, tenant: str, cache_key: str) -> bytes | None:
        result: bytes | None = self._call(lambda r: r.get(self.key(tenant, cache_key)), None)
        return result

    def put(self, tenant: str, cache_key: str, payload: bytes, ttl_s: float) -> bool:
        ms = max(int(ttl_s * 1000), 1)
        return bool(self._call(lambda r: r.set(self.key(tenant, cache_key), payload, px=ms), False))

    def delete(self, tenant: str, keys: list[str]) -> None:
        if keys:
            self._call(lambda r: r.delete(*[self.key(tenant, k) for k in keys]), 0)

    # -- per-worker cache statistics, for ``streamrag status`` ----------------------------------
    @property
    def stats_prefix(self) -> str:
        """Keys of worker statistics: under this deployment's prefix, so one Redis keeps deployments apart."""
        return f"{self.prefix}{STATS_SUFFIX}"

    def put_stats(self, worker: str, stats: dict[str, Any], ttl_s: int) -> None:
        self._call(lambda r: r.set(f"{self.stats_prefix}{worker}", json.dumps(stats), ex=ttl_s), None)

    def all_stats(self) -> dict[str, Any] | None:
        """worker -> its last statistics (this deployment's workers only); None when Redis does not answer."""
        pattern = _GLOB_SPECIAL.sub(r"\\\g<0>", self.stats_prefix) + "*"
        keys = self._call(lambda r: list(r.scan_iter(pattern, count=100)), None)
        if keys is None:
            return None
        out: dict[str, Any] = {}
        for k in keys:
            raw = self._call(lambda r, k=k: r.get(k), None)
            if raw:
                out[k.decode().removeprefix(self.stats_prefix)] = json.loads(raw)
        return out


def redis_for(r: RedisConfig, prefix: str, **kw: Any) -> RedisCache:
    """The project's Redis client from its settings (TLS by a rediss:// URL, AUTH password from the environment),
    its keys under ``prefix`` (the deployment's: STREAMRAG_CACHE_REDIS_PREFIX)."""
    return RedisCache(r.url, password=os.environ.get(r.password_env) or None, ssl_ca=r.ssl_ca, prefix=prefix, **kw)
