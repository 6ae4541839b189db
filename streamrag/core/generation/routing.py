"""Tiered routing: rules on question length, tenant and retrieval confidence choose the generator chain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from streamrag.core.generation.backend import GenerationRequest

TIERS = ("local", "openai", "extractive")


class GeneratorRoute(BaseModel):
    """A rule: when every condition given holds, answer with ``chain`` (tier names, tried in order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    chain: list[str] = Field(min_length=1)
    tenants: list[str] = Field(default_factory=list)
    min_question_chars: int = Field(0, ge=0)
    max_question_chars: int | None = Field(None, ge=0)
    min_confidence: float | None = None
    max_confidence: float | None = None

    def matches(self, req: GenerationRequest) -> bool:
        n = len(req.question)
        return (
            (not self.tenants or req.tenant in self.tenants)
            and n >= self.min_question_chars
            and (self.max_question_chars is None or n <= self.max_question_chars)
            and (self.min_confidence is None or req.confidence >= self.min_confidence)
            and (self.max_confidence is None or req.confidence <= self.max_confidence)
        )


def parse_chain(text: str) -> list[str]:
    """'openai,local' -> ['openai', 'local']; unknown tier names are a configuration error (ValueError)."""
    chain = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in chain if t not in TIERS]
    if bad or not chain:
        raise ValueError(f"unknown generator {', '.join(bad) or '(empty)'}: choose from {', '.join(TIERS)}")
    return chain


class Router:
    def __init__(self, default: Sequence[str], per_tenant: Mapping[str, Sequence[str]] | None = None,
                 routes: Sequence[GeneratorRoute] = ()) -> None:
        self.default = list(default)
        self.per_tenant = {k: list(v) for k, v in (per_tenant or {}).items()}
        self.routes = list(routes)

    def route(self, req: GenerationRequest) -> list[str]:
        for r in self.routes:
            if r.matches(req):
                return r.chain
        return self.per_tenant.get(req.tenant, self.default)
