"""``streamrag cluster rescale``: the plan (ids, addresses, the recovery store's limit), the one-line refusals,
the lines printed for hosts it cannot reach, and the local stop (SIGTERM, then SIGKILL) and start through pid files."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamrag.cli import app
from streamrag.core.errors import ConfigError
from streamrag.tools import cluster

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]  # the worker's arguments follow, unread
STUBBORN = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]


def store(tmp_path: Path, parts: int) -> Path:
    d = tmp_path / "recovery"
    d.mkdir()
    for i in range(parts):
        (d / f"part-{i}.sqlite3").touch()
    return d


def test_plan_addresses_one_host_or_one_host_each(tmp_path: Path) -> None:
    d = store(tmp_path, 4)
    p = cluster.plan(3, d, 1, ["10.0.0.5"], 2101)
    assert p.addresses == ["10.0.0.5:2101", "10.0.0.5:2102", "10.0.0.5:2103"]
    p = cluster.plan(2, d, 1, ["a", "b", "c"], 2201, workers=2)  # the store's 4 partitions, not the setting's 1
    assert p.addresses == ["a:2201", "b:2201"] and p.args(1) == ["-i", "1", "-a", "a:2201;b:2201", "-r", str(d), "-w", "2"]
    with pytest.raises(ConfigError, match="at least 3 hosts"):
        cluster.plan(3, d, 1, ["a", "b"])
    with pytest.raises(ConfigError, match="4 partitions: at most 4 workers"):
        cluster.plan(3, d, 8, ["a"], workers=2)
    assert cluster.plan(3, tmp_path, 3).processes == 3  # a folder without a store yet: the setting's partitions


def test_cli_refuses_past_the_partitions_or_without_the_folder_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRAG_RECOVERY_PARTITIONS", "4")
    (tmp_path / "recovery").mkdir()
    r = CliRunner().invoke(app, ["cluster", "rescale", "5", "-r", str(tmp_path / "recovery"), "--print-only"])
    assert r.exit_code == 1 and "at most 4 workers" in r.output and "asked 5 x 1" in r.output, r.output
    r = CliRunner().invoke(app, ["cluster", "rescale", "2", "-r", str(tmp_path / "missing"), "--print-only"])
    assert r.exit_code == 1 and "no recovery folder" in r.output, r.output
    r = CliRunner().invoke(app, ["cluster", "rescale", "2", "-r", str(tmp_path / "recovery")])
    assert r.exit_code == 1 and "--print-only" in r.output, r.output


def test_print_only_prints_each_hosts_command_and_touches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRAG_RECOVERY_PARTITIONS", "4")
    monkeypatch.setenv("STREAMRAG_RECOVERY_DIR", str(tmp_path))
    r = CliRunner().invoke(app, ["cluster", "rescale", "3", "--hosts", "h1,h2,h3", "--print-only"])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.stdout.splitlines() if "worker ingest" in line]
    addrs = "'h1:2101;h2:2101;h3:2101'"
    assert lines == [f"h{i + 1}: streamrag worker ingest -i {i} -a {addrs} -r {tmp_path} -w 1" for i in range(3)]


def alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_then_start_through_pid_files(tmp_path: Path) -> None:
    d, pids = store(tmp_path, 4), tmp_path / "pids"
    old = cluster.start(cluster.plan(2, d, 4), pids, tmp_path / "logs", command=SLEEPER)
    stubborn = cluster.start(cluster.plan(1, d, 4), tmp_path / "other", tmp_path / "logs", command=STUBBORN)
    (pids / "ingest-2.pid").write_text(f"{stubborn[0]}\n")
    (pids / "query-0.pid").write_text(f"{os.getpid()}\n")  # not an ingest process: left alone
    time.sleep(1)  # the stubborn one has its SIGTERM handler
    new: list[int] = []
    try:
        t0 = time.monotonic()
        stopped = cluster.stop(pids, timeout_s=2)
        assert sorted(stopped) == sorted([*old, *stubborn]) and time.monotonic() - t0 < 10
        assert not any(alive(p) for p in [*old, *stubborn])  # SIGTERM, and SIGKILL for the one that ignores it
        assert sorted(f.name for f in pids.iterdir()) == ["query-0.pid"]
        new += cluster.start(cluster.plan(3, d, 4, ["127.0.0.2", "127.0.0.3", "127.0.0.4"]), pids, tmp_path / "logs",
                            command=SLEEPER)
        assert [int((pids / f"ingest-{i}.pid").read_text()) for i in range(3)] == new and all(map(alive, new))
        assert (tmp_path / "logs" / "ingest-2.log").exists()
        assert cluster.stop(pids, timeout_s=5) == new
    finally:
        for p in [*old, *stubborn, *new]:
            if alive(p):
                os.kill(p, signal.SIGKILL)
