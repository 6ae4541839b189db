"""Percentiles, one method for every report: linear interpolation between closest ranks (numpy's default,
NumPy ``percentile(method="linear")``), so figures of different benchmarks and reports compare."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def percentile(xs: Iterable[float], p: float, digits: int | None = None) -> float:
    """The ``p``-th percentile of ``xs`` (0 <= p <= 100), rounded to ``digits`` when given; ValueError for no values."""
    a = np.asarray(list(xs), dtype=float)
    if a.size == 0:
        raise ValueError("no values")
    v = float(np.percentile(a, p))
    return round(v, digits) if digits is not None else v


def percentiles(xs: Iterable[float], ps: Sequence[float] = (50, 95, 99), digits: int | None = 2,
                prefix: str = "p", suffix: str = "") -> dict[str, float]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` (keys ``prefix + p + suffix``); ``{}`` for no values."""
    a = list(xs)
    return {f"{prefix}{p:g}{suffix}": percentile(a, p, digits) for p in ps} if a else {}
