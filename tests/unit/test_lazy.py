"""core.lazy.defer_package_init: a package's __init__ runs on the first name asked of it, not at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamrag.core.lazy import defer_package_init


def _package(root: Path, name: str) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("import builtins\nbuiltins.INIT_RUNS = getattr(builtins, 'INIT_RUNS', 0) + 1\n"
                                             "GREETING = 'hello'\n")
    (root / name / "models.py").write_text("MODEL = 'a model'\n")


def test_submodules_import_without_the_init_which_runs_once_on_first_use(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    _package(tmp_path, "deferred_pkg")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(builtins, "INIT_RUNS", 0, raising=False)
    try:
        assert defer_package_init("deferred_pkg")
        from deferred_pkg.models import MODEL

        assert MODEL == "a model" and builtins.INIT_RUNS == 0  # type: ignore[attr-defined]
        import deferred_pkg

        assert deferred_pkg.GREETING == "hello" and deferred_pkg.GREETING == "hello"
        assert builtins.INIT_RUNS == 1  # type: ignore[attr-defined]
        with pytest.raises(AttributeError, match="no attribute 'missing'"):
            _ = deferred_pkg.missing  # type: ignore[attr-defined]
        assert not defer_package_init("deferred_pkg")  # already imported: left alone
        assert not defer_package_init("no_such_package_here")
    finally:
        for m in [m for m in sys.modules if m.startswith("deferred_pkg")]:
            del sys.modules[m]


_LANCEDB = """
import sys, tempfile
import pyarrow as pa
import streamrag, lancedb
print("api imported with lancedb:", "lance_namespace_urllib3_client.api" in sys.modules)
db = lancedb.connect(tempfile.mkdtemp())
print("rows:", db.create_table("t", pa.table({"a": [1, 2]})).count_rows())
from lance_namespace_urllib3_client import ApiClient, TableApi
print("rest client:", ApiClient.__name__, TableApi.__name__)
"""


def test_lancedb_works_without_building_the_rest_namespace_client_until_asked() -> None:
    r = subprocess.run([sys.executable, "-c", _LANCEDB], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == ["api imported with lancedb: False", "rows: 2", "rest client: ApiClient TableApi"]
