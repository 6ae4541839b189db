"""The query path's classes stay small (issue #36, the project guide: classes <= 12 methods, <= 6 collaborators):
every class in streamrag/core/query/*.py, read with ``ast``, defines at most 12 functions in its body
(properties, their setters and ``@overload`` stubs each count) and its ``__init__`` takes at most 6 parameters
besides ``self``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

QUERY = Path(__file__).resolve().parents[2] / "streamrag" / "core" / "query"
MAX_METHODS = 12
MAX_INIT_PARAMS = 6


def classes() -> list[tuple[str, ast.ClassDef]]:
    out = []
    for path in sorted(QUERY.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        out += [(f"{path.name}:{node.name}", node) for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    return out


def methods(cls: ast.ClassDef) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def init_params(cls: ast.ClassDef) -> int:
    init = next((m for m in methods(cls) if m.name == "__init__"), None)
    if init is None:
        return 0
    a = init.args
    named = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    return len(named) - 1 + (a.vararg is not None) + (a.kwarg is not None)  # less self


def test_the_query_package_has_classes_to_check() -> None:
    assert len(classes()) >= 5


@pytest.mark.parametrize(("where", "cls"), classes(), ids=[w for w, _ in classes()])
def test_class_is_small(where: str, cls: ast.ClassDef) -> None:
    n, p = len(methods(cls)), init_params(cls)
    assert n <= MAX_METHODS, f"{where}: {n} methods (at most {MAX_METHODS}): {[m.name for m in methods(cls)]}"
    assert p <= MAX_INIT_PARAMS, f"{where}: __init__ takes {p} parameters besides self (at most {MAX_INIT_PARAMS})"
