"""``streamrag worker ingest | query | maintain``: the long-lived workers."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import partial
from pathlib import Path

import typer
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from streamrag.cli.app import cli_errors, console, settings, worker_app
from streamrag.connectors.metrics_server import serve_metrics
from streamrag.core.errors import ServiceUnavailable
from streamrag.core.settings import Settings
from streamrag.core.timing import StageTimer
from streamrag.flows import ingest as ingest_flow
from streamrag.flows import query as query_flow
from streamrag.flows.index_views import IndexViews
from streamrag.flows.maintenance import Maintainer


def placement(process_id: int | None, addresses: str | None, env: Mapping[str, str]) -> tuple[int | None, str | None]:
    """This process's id and the cluster's addresses, as ``python -m bytewax.run`` finds them in Kubernetes
    when not given: the id from BYTEWAX_POD_NAME minus ``BYTEWAX_STATEFULSET_NAME-`` (a StatefulSet's ordinal),
    the addresses from the lines of the file BYTEWAX_HOSTFILE_PATH names."""
    if process_id is None and "BYTEWAX_POD_NAME" in env and "BYTEWAX_STATEFULSET_NAME" in env:
        process_id = int(env["BYTEWAX_POD_NAME"].removeprefix(env["BYTEWAX_STATEFULSET_NAME"] + "-"))
    if addresses is None and env.get("BYTEWAX_HOSTFILE_PATH"):
        lines = Path(env["BYTEWAX_HOSTFILE_PATH"]).read_text(encoding="utf-8").splitlines()
        addresses = ";".join(a.strip() for a in lines if a.strip())
    return process_id, addresses


def new_recovery_store(d: Path, partitions: int, process_id: int, wait_s: float = 120.0) -> None:
    """Process 0 creates the recovery store (its partitions, then a mark that they are all there); the other
    processes of the cluster, started at the same time on the same folder, wait for the mark."""
    mark = d / ".streamrag-created"
    if process_id == 0:
        init_db_dir(d, partitions)
        mark.touch()
        return
    deadline = time.monotonic() + wait_s
    while not mark.exists():
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"no recovery store in {d} after {wait_s:g} s: process 0 creates it")
        time.sleep(0.2)


def process_age_s() -> float | None:
    """Seconds since this process started (Linux's /proc: from the exec, interpreter start-up included); None
    where that is not known."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        return float(Path("/proc/uptime").read_text().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def ready_line(kind: str, imports_s: float | None, ready_s: float | None, stages_ms: Mapping[str, float]) -> str:
    """``query worker running 3.1 s after its process started: imports 2.2 s, kafka 0.1 s, ...`` (one line): where a
    worker's start went (``streamrag bench start`` reads it)."""
    parts = ([f"imports {imports_s:.2f} s"] if imports_s is not None else []) + [
        f"{k} {v / 1000:.2f} s" for k, v in stages_ms.items()]
    when = f" {ready_s:.2f} s after its process started" if ready_s is not None else ""
    return f"{kind} worker running{when}: {', '.join(parts) or 'ready'} (Ctrl-C to stop)"


def run_worker(
    make_flow: Callable[[Settings, int], Dataflow], workers: int, process_id: int | None, addresses: str | None,
    recovery_dir: str | None, timer: StageTimer | None = None,
) -> None:
    """``timer``: the stages ``make_flow`` records, printed with the imports' time when the worker is ready."""
    imports_s = process_age_s()  # from the exec to here: the interpreter's start and the imports, almost all of it
    s = settings()
    process_id, addresses = placement(process_id, addresses, os.environ)
    flow = make_flow(s, process_id or 0)
    rdir = recovery_dir or s.worker.recovery_dir
    recovery = None
    if rdir:
        d = Path(rdir)
        d.mkdir(parents=True, exist_ok=True)
        if not any(d.glob("part-*.sqlite3")):
            new_recovery_store(d, s.worker.recovery_partitions, process_id or 0)
        recovery = RecoveryConfig(str(d))
    console.print(ready_line(flow.flow_id, imports_s, process_age_s(), timer.ms if timer else {}), highlight=False,
                  soft_wrap=True)
    cli_main(
        flow,
        workers_per_process=workers,
        process_id=process_id,
        addresses=addresses.split(";") if addresses else None,
        epoch_interval=timedelta(seconds=s.worker.snapshot_interval_s),
        recovery_config=recovery,
    )


_W = typer.Option(1, "--workers", "-w", help="worker threads per process (use processes to scale embedding)")
_I = typer.Option(None, "--process-id", "-i", help="this process's number in the cluster, 0.. (default 0, or "
                                                   "from BYTEWAX_POD_NAME)")
_A = typer.Option(None, "--addresses", "-a", help="host:port;host:port of every process")
_R = typer.Option(None, "--recovery-dir", "-r", help="resume from here after a restart")


@worker_app.command("ingest")
@cli_errors
def worker_ingest(workers: int = _W, process_id: int = _I, addresses: str = _A, recovery_dir: str = _R) -> None:
    """Run the ingest dataflow against Kafka until stopped."""
    run_worker(ingest_flow.main, workers, process_id, addresses, recovery_dir)


@worker_app.command("query")
@cli_errors
def worker_query(workers: int = _W, process_id: int = _I, addresses: str = _A, recovery_dir: str = _R) -> None:
    """Run the query dataflow against Kafka until stopped."""
    timer = StageTimer()
    run_worker(partial(query_flow.main, timer=timer), workers, process_id, addresses, recovery_dir, timer)


@worker_app.command("maintain")
@cli_errors
def worker_maintain(every: float = typer.Option(5.0, "--every", help="seconds between maintenance passes")) -> None:
    """Index maintenance (FTS, ANN builds, optimize) on its own; pair with STREAMRAG_MAINTENANCE=off."""
    s = settings()
    serve_metrics(s.worker, "maintain")
    m = Maintainer(s, every_s=every, views=IndexViews(s).start(s.worker.index_poll_s))  # the active index version
    signal.signal(signal.SIGTERM, lambda *_: m.stop())  # a stop in Kubernetes: the lease is given up at once
    console.print("index maintenance running (Ctrl-C to stop)", highlight=False)
    m.run_forever()
