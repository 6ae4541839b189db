"""One percentile method for every report: numpy's linear interpolation, the same keys and rounding everywhere."""

from __future__ import annotations

import pytest

from streamrag.core.percentiles import percentile, percentiles


def test_linear_interpolation_between_closest_ranks() -> None:
    xs = [1.0, 2.0, 3.0, 4.0]
    assert percentile(xs, 50) == 2.5  # nearest-rank would say 2 or 3
    assert percentile(xs, 95) == pytest.approx(3.85)
    assert percentile(range(101), 99) == 99.0


def test_keys_rounding_and_empty_input() -> None:
    assert percentiles([1.0, 2.0, 3.0, 4.0], (50, 95), digits=2) == {"p50": 2.5, "p95": 3.85}
    assert percentiles([10.0], suffix="_ms") == {"p50_ms": 10.0, "p95_ms": 10.0, "p99_ms": 10.0}
    assert percentiles([]) == {}
    with pytest.raises(ValueError):
        percentile([], 50)


def test_no_other_module_computes_percentiles() -> None:
    """One method for every report: a second percentile function makes figures incomparable (#36)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "streamrag"
    found = [f"{p.relative_to(root)}:{n.lineno} {n.name}" for p in root.rglob("*.py")
             if p.name != "percentiles.py"
             for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
             if isinstance(n, ast.FunctionDef) and ("percentile" in n.name.lower() or n.name.lower() in {"p50", "p95", "p99"})]
    assert not found
