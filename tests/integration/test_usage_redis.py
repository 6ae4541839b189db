"""Per-tenant daily token totals in the real Redis, shared by every worker: the budget holds across processes."""

from __future__ import annotations

import uuid

import pytest

from streamrag.connectors.redis_cache import RedisCache
from streamrag.connectors.redis_usage_ledger import RedisUsageLedger
from streamrag.core.generation.usage import TokenBudget, today
from streamrag.core.settings import Settings

pytestmark = pytest.mark.integration


def test_two_workers_share_a_tenants_daily_budget(settings: Settings) -> None:
    prefix = f"test:usage:{uuid.uuid4().hex[:6]}:"
    a = RedisUsageLedger(RedisCache(settings.redis.url), prefix=prefix)
    b = RedisUsageLedger(RedisCache(settings.redis.url), prefix=prefix)  # another worker's client
    budget_a = TokenBudget(a, default=0, per_tenant={"acme": 100})
    budget_b = TokenBudget(b, default=0, per_tenant={"acme": 100})
    budget_a.spend("acme", 60)
    assert not budget_b.exhausted("acme") and b.used("acme", today()) == 60
    budget_b.spend("acme", 50)
    assert budget_a.exhausted("acme") and a.used("acme", today()) == 110
    assert not budget_a.exhausted("globex") and a.used("globex", today()) == 0


def test_a_redis_outage_never_blocks_answers() -> None:
    down = RedisUsageLedger(RedisCache("redis://127.0.0.1:1/0", timeout_s=0.05))
    budget = TokenBudget(down, default=10)
    budget.spend("acme", 1_000)  # not recorded, no exception
    assert not budget.exhausted("acme")  # fails open: the answer is generated
