"""The command line's grammar across every command (issue #37): one meaning per short flag, ``--json`` on every
command that reports, help on every option, the documented exit codes, ``--version``, and a ``--help`` that
imports no command's module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from streamrag.cli import app
from streamrag.cli.app import COMMAND_MODULES, EXIT_CODES, cli_errors
from streamrag.cli.ask import ASK_WAIT_MARGIN_S, answer_wait_s
from streamrag.cli.docgen import commands, runnable
from streamrag.core.errors import StreamragError
from streamrag.core.settings import Settings
from streamrag.tools import publish

# Long-running servers print no report: they run until stopped.
SERVERS = {"gateway", "worker ingest", "worker query", "worker maintain"}
ROOT = Path(__file__).resolve().parents[2]


def options(cmd: Any) -> list[Any]:
    return [p for p in cmd.params if p.param_type_name == "option"]


def test_each_short_flag_means_one_long_option_in_every_command() -> None:
    meanings: dict[str, set[str]] = defaultdict(set)
    where: dict[str, list[str]] = defaultdict(list)
    for path, cmd in commands():
        for p in options(cmd):
            longs = [o for o in p.opts if o.startswith("--")]
            assert longs, f"{path}: {p.opts} has no long name"
            for short in (o for o in p.opts if not o.startswith("--")):
                meanings[short].add(longs[0])
                where[short].append(f"{path} {longs[0]}")
    clashes = {s: sorted(where[s]) for s, longs in meanings.items() if len(longs) > 1}
    assert not clashes, f"short flags with several meanings: {clashes}"
    assert meanings["-t"] == {"--tenant"} and meanings["-n"] == {"--queries"} and meanings["-i"] == {"--process-id"}


def test_every_command_that_reports_has_json() -> None:
    missing = [path for path, cmd in commands()
               if runnable(cmd) and path not in SERVERS and not any("--json" in p.opts for p in options(cmd))]
    assert not missing, f"commands without --json: {missing}"


def test_every_option_and_argument_has_help() -> None:
    tree = [("", typer.main.get_command(app)), *commands()]
    bare = [f"{path} {p.opts}" for path, cmd in tree for p in cmd.params if not getattr(p, "help", None)]
    assert not bare, f"options without help: {bare}"


def test_the_root_help_lists_each_command_with_its_own_summary() -> None:
    tree = dict(commands())
    for name, (_module, summary) in COMMAND_MODULES.items():
        assert (tree[name].help or "").strip().split("\n\n")[0] == summary, name
    assert set(COMMAND_MODULES) == {p for p in tree if " " not in p}


def test_version_is_the_installed_package_s() -> None:
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"streamrag {version('streamrag')}"


def test_help_lists_the_exit_codes() -> None:
    r = CliRunner().invoke(app, ["--help"], terminal_width=200)
    text = " ".join(r.stdout.split())
    assert r.exit_code == 0 and "Exit codes:" in text
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {' '.join(meaning.split())}" in text, code
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert all(f"| {code} | {meaning} |" in page for code, meaning in EXIT_CODES.items())


def test_exit_codes_usage_2_refused_1_unexpected_3(tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["ingest", "--no-such-option"]).exit_code == 2
    assert CliRunner().invoke(app, ["no-such-command"]).exit_code == 2
    r = CliRunner().invoke(app, ["cluster", "rescale", "2"], env={"STREAMRAG_RECOVERY_DIR": ""})
    assert r.exit_code == 1 and "recovery folder" in r.output  # refused
    probe = typer.Typer()

    @probe.command()
    @cli_errors
    def boom(refuse: bool = False) -> None:
        if refuse:
            raise StreamragError("no")
        raise RuntimeError("a bug\nsecond line")

    r = CliRunner().invoke(probe, [])
    assert r.exit_code == 3 and "RuntimeError: a bug" in r.output and "second line" not in r.output
    assert CliRunner().invoke(probe, ["--refuse"]).exit_code == 1


def test_publish_reports_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[bytes] = []

    class Producer:
        def __init__(self, k: Any, w: Any) -> None:
            pass

        def send(self, topic: str, key: bytes, value: bytes) -> None:
            sent.append(value)

        def flush(self) -> None:
            pass

    monkeypatch.setattr(publish, "check_reachable", lambda s: None)
    monkeypatch.setattr(publish, "JsonProducer", Producer)
    (tmp_path / "a.md").write_text("# A\n\nText.\n")
    r = CliRunner().invoke(app, ["publish", str(tmp_path / "a.md"), "-t", "acme", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"published": 1, "topic": Settings(_env_file=None).topics.documents,  # type: ignore[call-arg]
                                    "applied": False, "skipped": [], "refused": []}


def test_cluster_rescale_print_only_reports_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRAG_RECOVERY_PARTITIONS", "4")
    r = CliRunner().invoke(app, ["cluster", "rescale", "2", "-r", str(tmp_path), "--print-only", "--json"])
    assert r.exit_code == 0, r.output
    lines = json.loads(r.stdout)["commands"]
    assert len(lines) == 2 and all("streamrag worker ingest -i" in line for line in lines)


def test_ask_via_kafka_waits_the_generation_deadline_plus_margin() -> None:
    s = Settings(_env_file=None, generation_timeout_ms=90_000)  # type: ignore[call-arg]
    assert answer_wait_s(s, None) == 90 + ASK_WAIT_MARGIN_S > 90
    assert answer_wait_s(s, 5.0) == 5.0
    ask = dict(commands())["ask"]
    assert next(p for p in ask.params if "--timeout" in p.opts).default is None  # no fixed wait shorter than that


def test_help_imports_no_command_module_and_is_fast() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = ("import sys; from streamrag.cli import app; sys.argv = ['streamrag', '--help']\n"
             "try:\n    app()\nexcept SystemExit:\n    pass\n"
             "heavy = ('streamrag.cli.', 'streamrag.connectors', 'streamrag.flows', 'streamrag.tools', "
             "'streamrag.core.settings', 'pydantic', 'lancedb', 'torch', 'confluent_kafka')\n"
             "print('IMPORTED', sorted(m for m in sys.modules if m.startswith(heavy) and m != 'streamrag.cli.app'))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "ingest" in r.stdout, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "IMPORTED []"
    walls = []
    for _ in range(3):  # idle: ~0.35 s (it was 4.5 s, every command's module imported); the best of 3 on a busy CI
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "streamrag", "--help"], capture_output=True, env=env, timeout=60,
                       check=True)
        walls.append(time.perf_counter() - t0)
    assert min(walls) < 1.5, walls
