"""Tiered routing: rules on question length, tenant and retrieval confidence choose the generator chain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streamrag.core.config import GeneratorRoute
from streamrag.core.generation.backend import GenerationRequest


def route_matches(route: GeneratorRoute, req: GenerationRequest) -> bool:
    """Every condition the route gives holds for this request."""
    n = len(req.question)
    return (
        (not route.tenants or req.tenant in route.tenants)
        and n >= route.min_question_chars
        and (route.max_question_chars is None or n <= route.max_question_chars)
        and (route.min_confidence is None or req.confidence >= route.min_confidence)
        and (route.max_confidence is None or req.confidence <= route.max_confidence)
    )


class Router:
    def __init__(self, default: Sequence[str], per_tenant: Mapping[str, Sequence[str]] | None = None,
                 routes: Sequence[GeneratorRoute] = ()) -> None:
        self.default = list(default)
        self.per_tenant = {k: list(v) for k, v in (per_tenant or {}).items()}
        self.routes = list(routes)

    def route(self, req: GenerationRequest) -> list[str]:
        for r in self.routes:
            if route_matches(r, req):
                return list(r.chain)
        return self.per_tenant.get(req.tenant, self.default)
