"""Cache counters and lookup latencies, as a worker reports them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamrag.core.percentiles import percentile


@dataclass
class CacheStats:
    lookups: int = 0
    exact_hits: int = 0
    semantic_hits: int = 0
    unsafe_skips: int = 0
    guarded: int = 0
    invalidated: int = 0
    errors: int = 0
    bypassed: int = 0  # lookups skipped while the cache was not serving (its follower down)
    lookup_ms: list[float] = field(default_factory=list)

    def record_latency(self, ms: float) -> None:
        self.lookup_ms.append(ms)
        if len(self.lookup_ms) > 20_000:
            del self.lookup_ms[:10_000]

    def as_dict(self) -> dict[str, Any]:
        lat = np.array(self.lookup_ms[-10_000:]) if self.lookup_ms else np.zeros(1)
        hits = self.exact_hits + self.semantic_hits
        return {
            "lookups": self.lookups, "exact_hits": self.exact_hits, "semantic_hits": self.semantic_hits,
            "hit_rate": round(hits / self.lookups, 4) if self.lookups else 0.0, "unsafe_skips": self.unsafe_skips,
            "guarded": self.guarded, "invalidated": self.invalidated, "errors": self.errors, "bypassed": self.bypassed,
            "lookup_ms_p50": percentile(lat, 50, 3),
            "lookup_ms_p95": percentile(lat, 95, 3),
        }
