"""Generation slots and out-of-order offsets: what the concurrent query flow relies on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from streamrag.core.generation.chain import ConcurrentBreaker
from streamrag.core.inflight import InFlightOffsets
from streamrag.core.query.slots import GenerationSlots

Job = tuple[str, float, float]  # name, seconds of work, deadline (monotonic)


def slots(concurrency: int, ran: list[str] | None = None) -> GenerationSlots[Job, str]:
    def run(job: Job, emit: Callable[[str], None]) -> list[str]:
        if ran is not None:
            ran.append(job[0])
        emit(f"{job[0]}:delta")
        if job[0] == "bad":
            raise KeyError("a bug")
        time.sleep(job[1])
        return [f"{job[0]}:final"]

    return GenerationSlots(concurrency, run, deadline_of=lambda j: j[2], on_expired=lambda j: [f"{j[0]}:expired"],
                           on_error=lambda j, exc: [f"{j[0]}:error:{type(exc).__name__}"])


def collect(s: GenerationSlots[Job, str], want: int, timeout: float = 10) -> list[str]:
    got: list[str] = []
    end = time.monotonic() + timeout
    while sum(x.endswith((":final", ":expired")) or ":error:" in x for x in got) < want and time.monotonic() < end:
        got.extend(s.drain())
        time.sleep(0.005)
    return got


FAR = float("inf")


def test_a_short_job_is_not_held_behind_a_long_one() -> None:
    s = slots(2)
    s.submit([("long", 0.6, FAR)])
    s.submit([("short", 0.05, FAR)])
    finals = [x for x in collect(s, 2) if x.endswith(":final")]
    assert finals == ["short:final", "long:final"]


def test_deltas_come_before_the_final_result() -> None:
    s = slots(1)
    assert s.run_all([("a", 0.01, FAR), ("b", 0.01, FAR)]) == ["a:delta", "a:final", "b:delta", "b:final"]


def test_no_room_while_every_slot_is_busy_and_room_again_when_one_frees() -> None:
    s = slots(2)
    assert s.has_room()
    s.submit([("a", 0.3, FAR), ("b", 0.3, FAR)])
    assert not s.has_room() and s.busy == 2
    collect(s, 2)
    assert s.has_room() and s.busy == 0


def test_a_job_whose_deadline_passes_while_it_waits_is_answered_at_once_without_a_slot() -> None:
    ran: list[str] = []
    s = slots(1, ran)
    s.submit([("long", 0.8, FAR), ("late", 0.01, time.monotonic() + 0.1)])
    t0 = time.monotonic()
    got: list[str] = []
    while "late:expired" not in got and time.monotonic() - t0 < 5:
        got.extend(s.drain())
        time.sleep(0.01)
    assert "late:expired" in got and time.monotonic() - t0 < 0.6  # before the long job freed its slot
    collect(s, 1)
    assert ran == ["long"]  # the expired job never took a slot


def test_a_job_that_raises_becomes_its_error_result_and_frees_its_slot() -> None:
    s = slots(1)
    assert s.run_all([("bad", 0, FAR), ("ok", 0, FAR)]) == ["bad:delta", "bad:error:KeyError", "ok:delta", "ok:final"]
    assert s.has_room()


def test_results_go_to_the_worker_thread_that_submitted_them() -> None:
    s = slots(2)
    other: list[str] = []
    submitted = threading.Event()

    def worker() -> None:
        s.submit([("theirs", 0.01, FAR)])
        submitted.set()
        time.sleep(0.3)  # this worker thread drains later: its results wait for it
        other.extend(collect(s, 1))

    t = threading.Thread(target=worker)
    t.start()
    submitted.wait(2)
    s.submit([("mine", 0.1, FAR)])
    mine = collect(s, 1)
    t.join()
    assert [x for x in mine if x.endswith("final")] == ["mine:final"]
    assert [x for x in other if x.endswith("final")] == ["theirs:final"]


def test_offsets_are_committed_only_past_the_contiguous_prefix_of_done_records() -> None:
    o = InFlightOffsets()
    o.taken([("q", 0, 10), ("q", 0, 11), ("q", 0, 12), ("q", 1, 5)])
    assert o.done([("q", 0, 12)]) == []  # 10 and 11 still in flight: nothing may be committed
    assert o.done([("q", 0, 10)]) == [("q", 0, 10)]
    assert o.done([("q", 1, 5)]) == [("q", 1, 5)]
    assert o.done([("q", 0, 11)]) == [("q", 0, 12)]  # the prefix now reaches 12
    assert o.in_flight() == 0


def test_the_circuit_breaker_lets_generations_run_at_the_same_time() -> None:
    b = ConcurrentBreaker(fail_max=3, reset_timeout=30)
    inside = threading.Semaphore(0)
    both = threading.Event()

    def work() -> None:
        inside.release()
        both.wait(5)  # held until the test has seen both calls inside

    ts = [threading.Thread(target=b.call, args=(work,)) for _ in range(2)]
    for t in ts:
        t.start()
    ok = inside.acquire(timeout=1) and inside.acquire(timeout=1)
    both.set()
    for t in ts:
        t.join()
    assert ok, "the second generation waited for the first"
