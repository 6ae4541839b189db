"""No crash loop: a record in hand when the worker dies is processed alone at the restart, and dead-lettered
(stage ``crash``) at the restart after a second death with it alone in hand."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from streamrag.connectors.crash_ledger import FileCrashLedger, ledger_path, read_ledger
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.core.step_guard import StepGuard
from streamrag.tools.status import crash_ledgers

ROOT = Path(__file__).resolve().parents[2]


def _rec(offset: int) -> RawRecord:
    return RawRecord(value=b"{}", topic="q", partition=0, offset=offset)


def test_a_worker_that_dies_on_a_record_dead_letters_it_at_its_second_restart(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "tests.unit.crash_flow", str(tmp_path / "state"), str(tmp_path / "db"),
            str(tmp_path / "out.json")]
    codes = []
    for _ in range(3):
        codes.append(subprocess.run(args, env=env, cwd=ROOT, capture_output=True, timeout=180).returncode)
        if codes[-1] == 0:
            break
    # 1st run: dies with the batch in hand; 2nd: the suspects one by one, dies with the bomb alone; 3rd: done
    assert codes == [70, 70, 0]
    outs = json.loads((tmp_path / "out.json").read_text())
    indexed = sorted(o["doc_id"] for o in outs if o.get("status") == "indexed")
    dead = [(o["stage"], o["source"]["offset"]) for o in outs if "stage" in o]
    assert indexed == ["alpha", "delta", "gamma"] and dead == [("crash", 1)]
    ledger = read_ledger(ledger_path(str(tmp_path / "state"), "ingest", 0))
    assert ledger["crash_restarts"] == 2 and ledger["in_hand"] == [] and ledger["dead_lettered"] == 1
    assert ledger["convicted"] == [] and ledger["suspects"] == []  # the others went through alone: all cleared
    shown = crash_ledgers(Settings(state_dir=str(tmp_path / "state"), _env_file=None))  # type: ignore[call-arg]
    assert shown["ingest-0"]["crash_restarts"] == 2 and shown["ingest-0"]["dead_lettered"] == 1  # streamrag status


def test_the_ledger_convicts_only_a_suspect_that_was_alone_in_hand(tmp_path: Path) -> None:
    path = tmp_path / "l.json"
    first = FileCrashLedger(path, "query")
    dying = [first.holding("answer", [("q", 0, 5)])]  # kept: a dead process never leaves the step
    dying[0].__enter__()  # a SIGTERM mid-answer: one strike, not a conviction
    second = FileCrashLedger(path, "query")
    assert second.suspect(("q", 0, 5)) and not second.convicted(("q", 0, 5)) and second.crash_restarts == 1
    with second.holding("answer", [("q", 0, 6)]):
        pass  # a step that ends clears what it held
    assert FileCrashLedger(path, "query").crash_restarts == 1

    guard: StepGuard[RawRecord, object] = StepGuard("query", record_of=lambda r: r,
                                                    fail=lambda r, st, why: [(r.offset, st)], ledger=second)
    calls: list[list[int | None]] = []

    def step(batch: list[RawRecord]) -> list[object]:
        calls.append([r.offset for r in batch])
        if 5 in calls[-1]:
            raise SystemExit  # a death: not an Exception, so the ledger keeps the suspect in hand
        return [r.offset for r in batch]

    with contextlib.suppress(SystemExit):
        guard.wrap("answer", step)([_rec(4), _rec(5), _rec(7)])
    assert calls == [[4], [5]]  # in input order: the suspect alone
    third = FileCrashLedger(path, "query")
    assert third.convicted(("q", 0, 5)) and third.crash_restarts == 2
    guard = StepGuard("query", record_of=lambda r: r, fail=lambda r, st, why: [(r.offset, st)], ledger=third)
    assert guard.wrap("answer", lambda b: [r.offset for r in b])([_rec(4), _rec(5), _rec(7)]) == [4, (5, "crash"), 7]
    assert not FileCrashLedger(path, "query").convicted(("q", 0, 5))  # dead-lettered once, then forgotten


def test_a_ledger_that_cannot_be_written_or_read_never_stops_the_worker(tmp_path: Path) -> None:
    bad = tmp_path / "l.json"
    bad.write_text('{"crash_restarts": "x", "in_hand": 5, "suspects": {"a": 1}, "last_crash": []}')
    ledger = FileCrashLedger(bad, "ingest")  # a corrupt file: read as empty
    assert ledger.crash_restarts == 0 and not ledger.suspect(("t", 0, 1))
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    ledger = FileCrashLedger(blocked / "l.json", "ingest")  # its folder cannot be made: writes fail
    guard: StepGuard[RawRecord, object] = StepGuard("ingest", record_of=lambda r: r, fail=lambda r, st, why: [],
                                                    ledger=ledger)
    assert guard.wrap("parse", lambda b: [r.offset for r in b])([_rec(1), _rec(2)]) == [1, 2]
    assert ledger.write_failures >= 1


def test_a_native_panic_is_isolated_like_an_exception() -> None:
    class PanicException(BaseException):  # what pyo3 raises for a Rust panic (tokenizers, lance)
        pass

    def step(batch: list[int]) -> list[object]:
        if 2 in batch:
            raise PanicException("called `Option::unwrap()` on a `None` value")
        return list(batch)

    guard: StepGuard[int, object] = StepGuard("ingest", record_of=lambda i: None, fail=lambda i, st, why: [(i, why)])
    out = guard.wrap("chunk", step)([1, 2, 3])
    assert out[0] == 1 and out[2] == 3 and out[1][0] == 2 and "PanicException" in out[1][1]  # type: ignore[index]


def test_queries_in_generation_slots_at_a_crash_are_answered_without_the_model(tmp_path: Path) -> None:
    """A slot thread holds its query's position while the model runs; after the worker dies there, every
    query in hand is answered extractively at the restart (the model never sees them again), and a
    suspect that dies with others in hand is not convicted for it."""
    import threading
    import time

    from streamrag.core.query.concurrent import IN_HAND_AT_A_CRASH, ConcurrentAnswering, Job
    from streamrag.core.query.processor import Prepared, Reply
    from streamrag.schemas.models import Answer, Query

    path = tmp_path / "l.json"
    first = FileCrashLedger(path, "query")
    inside, release = threading.Event(), threading.Event()

    class Dying:  # the model: the process "dies" (the holder is never released) while it runs
        s = Settings(_env_file=None)  # type: ignore[call-arg]

        def reply(self, p: Prepared, stream: object) -> Reply:
            inside.set()
            release.wait(30)  # a dead process never comes back: its holder is never released
            raise SystemExit

        def extractive(self, p: Prepared, reason: str) -> Answer:
            return Answer(query_id=p.query.query_id, tenant="acme", status="ok", fallback=[reason])

    def job(offset: int) -> Job:
        q = Query(query_id=f"q{offset}", tenant="acme", text="x")
        p = Prepared(q, None, [], True, 1.0, [], None, 0.0, {}, float("inf"))  # type: ignore[arg-type]
        return Job(_rec(offset), p)

    ConcurrentAnswering(Dying(), 2, ledger=first).generate([(j.record, j.prepared) for j in (job(5), job(6))])  # type: ignore[arg-type]
    assert inside.wait(5)
    time.sleep(0.2)
    second = FileCrashLedger(path, "query")  # the restart
    assert second.suspect(("q", 0, 5)) and second.suspect(("q", 0, 6)) and second.crash_restarts == 1
    answering = ConcurrentAnswering(Dying(), 2, wait=True, ledger=second)  # type: ignore[arg-type]
    out = answering.generate([(j.record, j.prepared) for j in (job(5), job(6))])
    assert sorted(r.answer.query_id for _, r in out if isinstance(r, Reply)) == ["q5", "q6"]
    assert all(r.answer.fallback == [IN_HAND_AT_A_CRASH] for _, r in out if isinstance(r, Reply))
    release.set()
