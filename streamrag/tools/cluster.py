"""``streamrag cluster rescale N``: the ingest bytewax cluster stopped at its last snapshot and started again
with N processes from the same recovery folder (bytewax's membership is fixed while a cluster runs).

A plan names each new process's id (``-i``) and the address list every one of them gets (``-a``). With
``print_only`` the plan is all there is: the commands each host runs, after the old processes were stopped
there (SIGTERM). On one machine (the test bed, processes as hosts) ``rescale`` does both itself, through
pid files ``ingest-I.pid``: SIGTERM to every old process, each waited for (SIGKILL after ``stop_timeout_s``),
then N new ones, each in a session of its own, its output appended to ``ingest-I.log``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streamrag.core.errors import ConfigError

WORKER = [sys.executable, "-m", "streamrag.cli", "worker", "ingest"]


@dataclass(frozen=True)
class Plan:
    processes: int
    workers: int
    addresses: list[str]  # host:port of process 0, 1, ...
    recovery_dir: Path

    def args(self, i: int) -> list[str]:
        """Process ``i``'s arguments after ``streamrag worker ingest``."""
        return ["-i", str(i), "-a", ";".join(self.addresses), "-r", str(self.recovery_dir), "-w", str(self.workers)]

    def command_lines(self) -> list[str]:
        """What each host runs, one line per process (for hosts this tool cannot reach)."""
        return [f"{self.addresses[i].rsplit(':', 1)[0]}: streamrag worker ingest {shlex.join(self.args(i))}"
                for i in range(self.processes)]


def store_partitions(recovery_dir: Path, configured: int) -> int:
    """The partitions of the recovery store in ``recovery_dir`` (fixed when it was created), or
    ``configured`` (STREAMRAG_RECOVERY_PARTITIONS) for a folder whose store process 0 has yet to create."""
    parts = len(list(recovery_dir.glob("part-*.sqlite3")))
    return parts or configured


def plan(n: int, recovery_dir: Path, partitions: int, hosts: Sequence[str] = ("127.0.0.1",), port: int = 2101,
         workers: int = 1) -> Plan:
    """The new cluster: one host (its processes on consecutive ports from ``port``) or one host per process
    (each on ``port``; the first N of ``hosts``). Refused (ConfigError) past the recovery store's partitions
    or without a recovery folder."""
    if n < 1 or workers < 1:
        raise ConfigError(f"rescale needs at least one process of at least one worker thread (asked {n} x {workers})")
    if not recovery_dir.is_dir():
        raise ConfigError(f"no recovery folder {recovery_dir}: rescale resumes a cluster from its recovery store "
                          "(start the cluster with -r DIR first)")
    most = store_partitions(recovery_dir, partitions)
    if n * workers > most:
        raise ConfigError(f"the recovery store in {recovery_dir} has {most} partitions: at most {most} workers "
                          f"(processes x threads), asked {n} x {workers}; start a fresh store for more")
    hosts = [h.strip() for h in hosts if h.strip()]
    if len(hosts) == 1:
        addresses = [f"{hosts[0]}:{port + i}" for i in range(n)]
    elif len(hosts) >= n:
        addresses = [f"{h}:{port}" for h in hosts[:n]]
    else:
        raise ConfigError(f"{n} processes need one host, or at least {n} hosts ({len(hosts)} given)")
    return Plan(n, workers, addresses, recovery_dir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(pid_dir: Path, timeout_s: float = 20.0) -> list[int]:
    """SIGTERM to every process of ``ingest-*.pid`` in ``pid_dir`` at once (each stops at its last snapshot),
    then each waited for, SIGKILL past ``timeout_s``; the pid files are removed. The pids that were alive."""
    stopped: list[int] = []
    files = sorted(pid_dir.glob("ingest-*.pid"))
    for f in files:
        try:
            pid = int(f.read_text().strip())
        except ValueError:
            continue
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
    deadline = time.monotonic() + timeout_s
    for pid in stopped:
        while _alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            gone = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < gone:
                _reap(pid)
                time.sleep(0.05)
    for f in files:
        f.unlink(missing_ok=True)
    return stopped


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit when it is a child of this process (else a stopped child stays a zombie: alive)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def start(p: Plan, pid_dir: Path, log_dir: Path, command: Sequence[str] = WORKER) -> list[int]:
    """Process 0..N-1 of ``p`` on this machine; each serves its /metrics on its own address's host."""
    pid_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    pids = []
    for i in range(p.processes):
        host = p.addresses[i].rsplit(":", 1)[0]
        with open(log_dir / f"ingest-{i}.log", "ab") as log:
            proc = subprocess.Popen([*command, *p.args(i)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, "STREAMRAG_METRICS_HOST": host}, start_new_session=True)
        (pid_dir / f"ingest-{i}.pid").write_text(f"{proc.pid}\n")
        pids.append(proc.pid)
    return pids
