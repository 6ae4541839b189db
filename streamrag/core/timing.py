"""Stage timings in milliseconds, recorded by a context manager (one place, every stage)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimer:
    """``with timer.stage("search"): ...`` adds that stage's wall time (ms) to ``timer.ms``."""

    def __init__(self, **already: float) -> None:
        self.ms: dict[str, float] = {k: round(v, 3) for k, v in already.items()}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = round(self.ms.get(name, 0.0) + (time.perf_counter() - t) * 1000, 3)
