"""The lease contract (streamrag.core.lease.Lease), run against an in-memory fake (unit) and the Redis adapter
(integration): one holder at a time, renewed by its holder only, handed over on release or when it runs out."""

from __future__ import annotations

import threading
import time
import uuid

from streamrag.core.lease import Lease


class FakeLeases:
    """Leases of one process in memory: name -> (holder, expiry on the monotonic clock)."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[object, float]] = {}
        self.lock = threading.Lock()

    def lease(self, name: str, ttl_s: float) -> FakeLease:
        return FakeLease(self, name, ttl_s)


class FakeLease:
    def __init__(self, leases: FakeLeases, name: str, ttl_s: float) -> None:
        self.leases, self.name, self.ttl_s = leases, name, ttl_s

    def acquire(self) -> bool:
        with self.leases.lock:
            holder, until = self.leases.held.get(self.name, (None, 0.0))
            if holder not in (None, self) and until > time.monotonic():
                return False
            self.leases.held[self.name] = (self, time.monotonic() + self.ttl_s)
            return True

    def release(self) -> None:
        with self.leases.lock:
            if self.leases.held.get(self.name, (None, 0.0))[0] is self:
                del self.leases.held[self.name]


class LeaseContract:
    def make(self, name: str, ttl_s: float) -> Lease:
        raise NotImplementedError

    def test_one_holder_at_a_time_and_the_holder_renews(self) -> None:
        name = uuid.uuid4().hex
        a, b = self.make(name, 30), self.make(name, 30)
        assert a.acquire()
        assert not b.acquire()
        assert a.acquire()  # a renewal, not a refusal
        assert not b.acquire()
        assert self.make(uuid.uuid4().hex, 30).acquire()  # another name: another lease

    def test_release_hands_the_lease_over(self) -> None:
        name = uuid.uuid4().hex
        a, b = self.make(name, 30), self.make(name, 30)
        assert a.acquire()
        b.release()  # not the holder: changes nothing
        assert not b.acquire()
        a.release()
        assert b.acquire()
        assert not a.acquire()

    def test_a_holder_that_stops_renewing_loses_the_lease_when_it_runs_out(self) -> None:
        name = uuid.uuid4().hex
        a, b = self.make(name, 1.0), self.make(name, 1.0)
        assert a.acquire()
        assert not b.acquire()
        deadline = time.monotonic() + 10
        while not b.acquire():
            assert time.monotonic() < deadline, "the lease never ran out"
            time.sleep(0.1)
        assert not a.acquire()  # it is b's now: a may not take it back by renewing
