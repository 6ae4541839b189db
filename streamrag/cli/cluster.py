"""``streamrag cluster rescale N``: stop the ingest cluster at its last snapshot, start N processes from the same
recovery folder (or, with --print-only, print what each host runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from streamrag.cli.app import app, cli_errors, json_option, out, print_report, settings
from streamrag.core.errors import ConfigError
from streamrag.tools import cluster

cluster_app = typer.Typer(no_args_is_help=True, help="The ingest bytewax cluster.")
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("rescale")
@cli_errors
def rescale(
    processes: int = typer.Argument(..., help="the new number of ingest processes"),
    recovery_dir: str = typer.Option(None, "--recovery-dir", "-r", help="the cluster's recovery folder (STREAMRAG_RECOVERY_DIR)"),
    hosts: str = typer.Option("127.0.0.1", "--hosts", help="h1,h2,...: one host per process (the first N), or one host for all"),
    port: int = typer.Option(2101, "--port", help="the bytewax port of each process (one host: the first of N consecutive ones)"),
    workers: int = typer.Option(1, "--workers", "-w", help="worker threads per process"),
    pid_dir: str = typer.Option(None, "--pid-dir", help="this machine's ingest-I.pid files: stop those, start the new ones here"),
    log_dir: str = typer.Option(None, "--log-dir", help="where the new processes' ingest-I.log go (default: --pid-dir)"),
    print_only: bool = typer.Option(False, "--print-only", help="stop and start nothing: print each host's command"),
    stop_timeout: float = typer.Option(20.0, "--stop-timeout", help="seconds a process gets to stop before SIGKILL"),
    json_out: bool = json_option(),
) -> None:
    """Rescale the ingest cluster to N processes (at most STREAMRAG_RECOVERY_PARTITIONS workers in all)."""
    s = settings()
    rdir = recovery_dir or s.worker.recovery_dir
    if not rdir:
        raise ConfigError("rescale needs the cluster's recovery folder: -r DIR (or STREAMRAG_RECOVERY_DIR)")
    p = cluster.plan(processes, Path(rdir), s.worker.recovery_partitions, hosts.split(","), port, workers)
    if print_only and json_out:
        print_report({"commands": p.command_lines()}, True)
        return
    if print_only:
        out.print("stop every ingest process (SIGTERM), then run on each host:", highlight=False)
        for line in p.command_lines():
            out.print(line, highlight=False, markup=False, soft_wrap=True)
        return
    if not pid_dir:
        raise ConfigError("without --pid-dir there is nothing here to stop or start: --print-only prints "
                          "the command each host runs")
    stopped = cluster.stop(Path(pid_dir), stop_timeout)
    if not json_out:
        out.print(f"stopped {len(stopped)} ingest processes (pids {' '.join(map(str, stopped)) or '-'})", highlight=False)
    pids = cluster.start(p, Path(pid_dir), Path(log_dir or pid_dir))
    if json_out:
        print_report({"stopped": stopped, "started": [{"process": i, "address": p.addresses[i], "pid": pid}
                                                       for i, pid in enumerate(pids)]}, True)
        return
    for i, pid in enumerate(pids):
        out.print(f"ingest-{i} on {p.addresses[i]} (pid {pid})", highlight=False)
