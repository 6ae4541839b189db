"""The README is the CLI and the Settings object: its configuration table has the same variables and defaults, and it
lists every command."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main

from streamrag.cli import app
from streamrag.core.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def table() -> dict[str, str]:
    text = README.read_text(encoding="utf-8").split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\| `(STREAMRAG_[A-Z0-9_]+)` \| `([^`]*)` \|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def shown(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def test_every_setting_is_documented_with_its_default() -> None:
    rows = table()
    fields = {f"STREAMRAG_{name.upper()}": f for name, (_, _, f) in Settings.flat_fields().items()}
    assert set(rows) == set(fields), f"README only: {set(rows) - set(fields)}; Settings only: {set(fields) - set(rows)}"
    for env, f in fields.items():
        default = f.default_factory() if f.default_factory is not None else f.default  # type: ignore[call-arg]
        assert rows[env] == shown(default), env


def command_paths() -> list[str]:
    """Every command of the CLI as typed after ``streamrag`` (a group that runs alone counts too)."""
    def walk(cmd: Any, path: list[str]) -> Iterator[str]:
        subs = getattr(cmd, "commands", None)
        if not subs:
            yield " ".join(path)
            return
        if path and getattr(cmd, "invoke_without_command", False):
            yield " ".join(path)
        for name, sub in subs.items():
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


def test_every_command_is_in_the_readme() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()

    def listed(path: str) -> bool:  # `streamrag g c ...`, or `streamrag g a` / `c ...` on one line
        group, _, leaf = path.rpartition(" ")
        return any(f"streamrag {path}" in line or (group and f"streamrag {group} " in line and f"`{leaf}" in line)
                   for line in lines)

    paths = command_paths()
    assert "cluster rescale" in paths and "replay" in paths
    missing = [p for p in paths if not listed(p)]
    assert not missing, f"commands the README does not list: {missing}"
