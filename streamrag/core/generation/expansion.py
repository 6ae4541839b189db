"""Query expansion on its own time budget: a late or failed expansion never holds the search up. Its tokens
count against the tenant's daily token budget; a tenant over it gets no expansion."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter

from streamrag.core.generation.backend import ChatModel, DeadlineExceeded, GenerationError
from streamrag.core.generation.prompt import expansion_messages
from streamrag.core.generation.usage import TokenBudget

log = logging.getLogger(__name__)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)]|query\s*\d*:)\s*", re.I)


class QueryExpander:
    def __init__(self, model: ChatModel, budget_ms: int = 1500, tokens_per_variant: int = 24,
                 tokens: TokenBudget | None = None) -> None:
        self.model = model
        self.budget_ms = budget_ms
        self.tokens_per_variant = tokens_per_variant
        self.tokens = tokens
        self.stats: Counter[str] = Counter()

    def expand(self, question: str, n: int, tenant: str = "", deadline: float | None = None) -> list[str]:
        """Up to ``n`` rephrasings, or none when the model is late or fails, or ``tenant`` is over its daily
        tokens (counted in ``stats``); ``deadline`` (time.monotonic()) may end it before its own budget."""
        if n <= 0:
            return []
        if self.tokens is not None and self.tokens.exhausted(tenant):
            self.stats["over_budget"] += 1
            return []
        deadline = min(time.monotonic() + self.budget_ms / 1000, deadline if deadline is not None else float("inf"))
        if deadline <= time.monotonic():
            self.stats["late"] += 1
            return []
        try:
            comp = self.model.complete(expansion_messages(question, n), max_tokens=self.tokens_per_variant * n + 8,
                                       temperature=0.3, deadline=deadline)
        except DeadlineExceeded:
            self.stats["late"] += 1
            return []
        except GenerationError as exc:
            log.warning("query expansion failed: %s", exc)
            self.stats["error"] += 1
            return []
        if self.tokens is not None:
            self.tokens.spend(tenant, comp.prompt_tokens + comp.completion_tokens)
        seen = {question.strip().lower()}
        out = []
        for line in comp.text.splitlines():
            v = _BULLET.sub("", line).strip().strip('"').strip()
            if 3 <= len(v) <= 300 and v.lower() not in seen:
                seen.add(v.lower())
                out.append(v)
        self.stats["ok" if out else "empty"] += 1
        return out[:n]
