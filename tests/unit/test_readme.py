"""The README's configuration table is the Settings object: same variables, same defaults."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
