"""Cache keys and policy (pure): normalisation, ACL scope, options hash, per-tenant thresholds and TTLs."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass

from schemas.models import Query
from streamrag.security import principal_tokens

_WS = re.compile(r"\s+")
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")


def normalize(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).casefold()
    return _EDGE.sub("", _WS.sub(" ", t)).strip()


def _h(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def scope_of(q: Query) -> str:
    """The asker's ACL scope: a hash of the principal's tokens (user and roles)."""
    return _h(principal_tokens(q.principal))


def options_hash(q: Query, default_fusion: str, default_alpha: float, default_rerank: str) -> str:
    o = q.options
    return _h({
        "k": q.top_k, "f": q.filters.model_dump(mode="json"), "fusion": o.fusion or default_fusion,
        "alpha": default_alpha if o.alpha is None else o.alpha, "rerank": o.rerank or default_rerank,
        "variants": list(o.variants),
    })


def exact_key(tenant: str, normalized: str, scope: str, opts: str) -> str:
    return _h([tenant, normalized, scope, opts])


@dataclass(frozen=True)
class TenantPolicy:
    threshold: float = 0.92
    ttl_s: float = 3600.0
    enabled: bool = True
    # document metadata "type" -> TTL; an entry lives as long as the shortest TTL of what it cites
    ttl_by_type: tuple[tuple[str, float], ...] = ()

    def ttl_for(self, doc_types: list[str]) -> float:
        by_type = dict(self.ttl_by_type)
        return min([self.ttl_s, *(by_type[t] for t in doc_types if t in by_type)])


def tenant_policy(tenant: str, default: TenantPolicy, overrides: dict[str, dict[str, object]]) -> TenantPolicy:
    o = overrides.get(tenant)
    if not o:
        return default
    return TenantPolicy(
        threshold=float(o.get("threshold", default.threshold)),  # type: ignore[arg-type]
        ttl_s=float(o.get("ttl_s", default.ttl_s)),  # type: ignore[arg-type]
        enabled=bool(o.get("enabled", default.enabled)),
        ttl_by_type=tuple(sorted((str(k), float(v)) for k, v in dict(o.get("ttl_by_type") or {}).items())),  # type: ignore[call-overload]
    )
