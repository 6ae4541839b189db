"""A lease in Redis (``SET key token NX PX ttl``, renewed only by its holder): redis-py's ``Lock``, never
blocking. While Redis does not answer, nobody holds it here: the work waits rather than running twice."""

from __future__ import annotations

import contextlib
import logging
import uuid

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from streamrag.connectors.redis_cache import RedisCache

log = logging.getLogger(__name__)
PREFIX = "streamrag:lease:"


class RedisLease:
    def __init__(self, redis_cache: RedisCache, name: str, ttl_s: float = 30.0, prefix: str = PREFIX) -> None:
        self.ttl_s = ttl_s
        self.key = f"{prefix}{name}"
        self.holder = uuid.uuid4().hex[:12]  # for the logs
        self._lock = Lock(redis_cache.client, self.key, timeout=ttl_s, blocking=False, thread_local=False)
        self._held = False

    def acquire(self) -> bool:
        try:
            if self._held:
                try:
                    self._lock.reacquire()  # a fresh time to live, only while the token is still ours
                    return True
                except LockError:
                    self._held = False
                    log.warning("lease %s expired before it was renewed (holder %s)", self.key, self.holder)
            self._held = bool(self._lock.acquire(blocking=False))
            if self._held:
                log.info("lease %s taken (holder %s)", self.key, self.holder)
        except (redis.RedisError, OSError) as exc:
            if self._held:
                log.warning("lease %s: Redis does not answer (%s); given up", self.key, exc)
            self._held = False
        return self._held

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        with contextlib.suppress(LockError, redis.RedisError, OSError):  # expired or unreachable: it runs out
            self._lock.release()  # deletes the key only while the token is still ours
