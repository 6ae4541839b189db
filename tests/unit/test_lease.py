"""The lease port (one maintainer at a time): its contract on the fake, renewal while work runs, and the
Maintainer skipping its runs while another process holds the lease."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from streamrag.core.lease import AlwaysHeld, Lease, kept
from streamrag.core.settings import Settings
from streamrag.flows.maintenance import Maintainer
from tests.lease_contract import FakeLeases, LeaseContract


class TestFakeLease(LeaseContract):
    leases = FakeLeases()

    def make(self, name: str, ttl_s: float) -> Lease:
        return self.leases.lease(name, ttl_s)


def test_a_lease_is_kept_while_long_work_runs_past_its_time_to_live() -> None:
    leases = FakeLeases()
    a, b = leases.lease("x", 0.6), leases.lease("x", 0.6)
    assert a.acquire()
    with kept(a) as lost:
        for _ in range(15):  # 1.5 s: well past the 0.6 s time to live
            time.sleep(0.1)
            assert not b.acquire()
    assert not lost.is_set()


def test_kept_says_when_the_lease_was_lost() -> None:
    class Lost:
        ttl_s = 0.3

        def acquire(self) -> bool:
            return False

        def release(self) -> None: ...

    with kept(Lost()) as lost:
        assert lost.wait(5)


def test_maintainers_sharing_a_lease_run_one_at_a_time(tmp_path: Path) -> None:
    s = Settings(_env_file=None, lancedb_uri=str(tmp_path / "db"))  # type: ignore[call-arg]
    leases = FakeLeases()
    a = Maintainer(s, lease=leases.lease("maintenance", 30))
    b = Maintainer(s, lease=leases.lease("maintenance", 30))
    inside: list[str] = []
    overlap = threading.Event()

    def slow(name: str) -> Any:
        def maintain(force: bool = False) -> None:
            inside.append(name)
            if len(inside) > 1:
                overlap.set()
            time.sleep(0.05)
            inside.remove(name)
        return maintain

    a.store.maintain = slow("a")  # type: ignore[method-assign]
    b.store.maintain = slow("b")  # type: ignore[method-assign]
    assert a.run_once() and not b.run_once()
    assert (a.runs, b.runs, b.skipped) == (1, 0, 1)
    a.every_s = b.every_s = 0.01
    a.start(), b.start()
    time.sleep(0.5)
    a.stop()  # releases the lease: b takes over at its next run
    runs_b = b.runs
    time.sleep(0.5)
    b.stop()
    assert not overlap.is_set()
    assert a.runs > 1 and runs_b == 0 and b.runs > 0


def test_a_single_process_always_maintains(tmp_path: Path) -> None:
    s = Settings(_env_file=None, lancedb_uri=str(tmp_path / "db"))  # type: ignore[call-arg]
    m = Maintainer(s)
    assert isinstance(m.lease, AlwaysHeld) and m.run_once() and m.run_once()
