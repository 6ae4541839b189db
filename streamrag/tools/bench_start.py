"""``streamrag bench start``: how long a query worker takes from its launch to its first answer, over fresh
starts (a new process and new topics each run), with the worker's own account of where its start went."""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from streamrag.core.settings import Settings
from streamrag.tools.bench_common import Log, machine
from streamrag.tools.bench_query import QueryRig

# ``ready_line`` of streamrag.cli.workers
READY = re.compile(r"worker running (?P<ready>[\d.]+) s after its process started: (?P<stages>.*) \(Ctrl-C")
STAGE = re.compile(r"(?P<name>[\w+-]+) (?P<s>[\d.]+) s")


def ready_stages(log_text: str) -> dict[str, float]:
    """The worker's ready line as seconds by stage, with ``ready`` (since its process started); {} without one."""
    m = READY.search(log_text)
    if m is None:
        return {}
    return {"ready": float(m["ready"]), **{g["name"]: float(g["s"]) for g in STAGE.finditer(m["stages"])}}


def cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux's /proc; None elsewhere): what its
    start cost, whatever else the machine runs."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # fields 14 and 15: utime, stime
    except (OSError, ValueError, IndexError):
        return None


def first_answer(rig: QueryRig, text: str, timeout_s: float = 300.0) -> tuple[float, dict[str, Any], float | None]:
    """Publish one question at once (it waits in the topic until the worker reads it) and wait for its
    answer: seconds from the worker's launch, the answer, and the CPU seconds the worker had used by then."""
    qid = f"start-{uuid.uuid4().hex[:8]}"
    rig.prod.send(rig.bs.topics.queries, qid, {"query_id": qid, "tenant": "eval", "text": text,
                                                "options": {"use_cache": False}})
    rig.prod.flush()
    deadline = time.monotonic() + timeout_s
    while qid not in rig.got:
        if time.monotonic() > deadline or rig.procs[0].poll() is not None:
            raise RuntimeError(f"query worker did not answer (logs in {rig.workdir})")
        time.sleep(0.005)
    at, answer = rig.got[qid]
    return at - rig.launched, answer, cpu_s(rig.procs[0].pid)


def bench_start(s: Settings, dataset: Path, runs: int, workdir: Path, log: Log) -> dict[str, Any]:
    """``runs`` fresh query workers, each timed from launch to its first answer (retrieval, extractive answer)."""
    rows = []
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="streamrag-start-") as tmp:
            rig = QueryRig(s, dataset, workdir, log, logdir=Path(tmp))
            try:
                total_s, answer, worker_cpu_s = first_answer(rig, next(iter(rig.queries.values())))
            finally:
                rig.close()
            stages = ready_stages((Path(tmp) / "query-0.log").read_text(encoding="utf-8", errors="replace"))
        row = {"first_answer_s": round(total_s, 3), "worker_cpu_s": worker_cpu_s, "worker_s": stages,
               "after_ready_s": round(total_s - stages["ready"], 3) if "ready" in stages else None,
               "first_query_ms": answer.get("timings_ms", {})}
        rows.append(row)
        log(f"run {i + 1}: first answer {total_s:.2f} s after launch (worker CPU {worker_cpu_s} s); worker ready at {stages.get('ready', '?')} s "
            f"({', '.join(f'{k} {v:.2f}' for k, v in stages.items() if k != 'ready')}); the first question's "
            f"stages {row['first_query_ms']}")
    return {"machine": machine(s), "chunks": rig.chunks, "generator": rig.generator,
            "query_encoder": s.index.query_encoder, "runs": rows,
            "first_answer_s": [r["first_answer_s"] for r in rows], "worker_cpu_s": [r["worker_cpu_s"] for r in rows]}
