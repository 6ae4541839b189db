"""No SQL in core (issue #36): a search's scope is a value (core/scope.py) that each store renders; the only
place a LanceDB filter string is written from a scope is connectors/lancedb_filters.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "streamrag" / "core"
# fragments of a filter expression in a string literal (f-strings included; docstrings and comments are prose)
SQL = re.compile(r"array_has|\bIN\s*[\(\[\{]|\s(AND|OR)\s|\b\w+ (=|!=|<>|>=|<=) ['{\[]|\bWHERE\b|\bLIKE\b")


def _docstrings(tree: ast.Module) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def sql_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree) | {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.endswith("_literal"):
            found.append(f"{path.name}:{node.lineno}: def {node.name}")
        if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)
                                               and id(node) not in skip):
            text = ast.unparse(node)
            if SQL.search(text):
                found.append(f"{path.name}:{node.lineno}: {text[:80]}")
    return found


def test_the_pattern_finds_the_filter_strings_core_used_to_build(tmp_path: Path) -> None:
    """The check can fail: it finds each kind of clause the old ``Scope(str)`` and ``filter_clauses`` wrote."""
    old = '''
def tenant_literal(t): return f"'{t}'"
a = f"tenant = {tenant_literal(t)}"
b = f"array_has_any(acl, {toks})"
c = " AND ".join(parts)
d = f"updated_ms >= {int(x)}"
e = f"doc_key IN {keys}"
'''
    (tmp_path / "old.py").write_text(old, encoding="utf-8")
    assert len(sql_in(tmp_path / "old.py")) == 6
    (tmp_path / "prose.py").write_text(NOT_SQL, encoding="utf-8")
    assert sql_in(tmp_path / "prose.py") == []


# messages and values that are not filters
NOT_SQL = '''
a = f"not enough data (n={n} vs {m})"
b = f"too large: more than STREAMRAG_MAX_DOC_BYTES={x} bytes"
c = Condition("meta", "has_any", ("m:1",))
'''


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_no_filter_sql_in_core(path: Path) -> None:
    assert sql_in(path) == []
