"""Usage and cost: tokens per answer, per-tenant daily totals, a price table, daily token budgets."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from streamrag.core.config import ModelPrice


def cost(prices: Mapping[str, ModelPrice], model: str, prompt_tokens: int, completion_tokens: int) -> float:
    p = prices.get(model)
    if p is None:
        return 0.0
    return round((prompt_tokens * p.input_per_mtok + completion_tokens * p.output_per_mtok) / 1e6, 8)


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


class UsageLedger(Protocol):
    """Tokens used per tenant and UTC day, shared by every worker of a deployment."""

    def add(self, tenant: str, day: str, tokens: int) -> int:
        """Add and return the day's total."""
        ...

    def used(self, tenant: str, day: str) -> int: ...


class MemoryLedger:
    """One process's ledger (embedded use, tests)."""

    def __init__(self) -> None:
        self._used: dict[tuple[str, str], int] = defaultdict(int)
        self._lock = threading.Lock()

    def add(self, tenant: str, day: str, tokens: int) -> int:
        with self._lock:
            self._used[(tenant, day)] += tokens
            return self._used[(tenant, day)]

    def used(self, tenant: str, day: str) -> int:
        return self._used.get((tenant, day), 0)


class TokenBudget:
    """A tenant over its daily token budget gets extractive answers until the UTC day turns."""

    def __init__(self, ledger: UsageLedger, default: int = 0, per_tenant: Mapping[str, int] | None = None) -> None:
        self.ledger = ledger
        self.default = default
        self.per_tenant = dict(per_tenant or {})

    def limit(self, tenant: str) -> int:
        return self.per_tenant.get(tenant, self.default)

    def exhausted(self, tenant: str) -> bool:
        limit = self.limit(tenant)
        return limit > 0 and self.ledger.used(tenant, today()) >= limit

    def spend(self, tenant: str, tokens: int) -> None:
        if tokens > 0:
            self.ledger.add(tenant, today(), tokens)
