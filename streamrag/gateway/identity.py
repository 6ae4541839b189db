"""Who is asking: the tenant, user and roles of a request, and whether the tenant may ask again now.

With auth on, identity comes only from ``Authorization: Bearer <JWT>``, verified with the same per-tenant keys
as the query worker (``core.auth.TokenVerifier``); a ``tenant`` field naming another tenant is refused. With auth
off (development), the request names its tenant (and optionally its user) itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from streamrag.core.auth import TokenVerifier
from streamrag.core.security import valid_tenant
from streamrag.gateway.errors import ApiError
from streamrag.schemas.models import Query


@dataclass(frozen=True)
class Caller:
    tenant: str
    user: str | None = None
    roles: list[str] = field(default_factory=list)
    token: str | None = None  # passed on to the worker, which verifies it again


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


class Identity:
    def __init__(self, auth_on: bool, verifier: TokenVerifier | None) -> None:
        self.auth_on = auth_on
        self.verifier = verifier

    def caller(self, authorization: str | None, tenant: str | None, user: str | None = None) -> Caller:
        """The request's caller, or ApiError 400 (no tenant), 401 (no or bad token), 403 (another tenant)."""
        if not self.auth_on:
            if not tenant:
                raise ApiError(400, "tenant is required: auth is off, so the request names it (a 'tenant' field)")
            if not valid_tenant(tenant):
                raise ApiError(400, f"invalid tenant {tenant[:80]!r}: letters, digits, '_', '.', '-' (max 64)")
            return Caller(tenant, user)
        token = bearer(authorization)
        if token is None:
            raise ApiError(401, "unauthenticated: send Authorization: Bearer <token>")
        try:
            claimed = jwt.decode(token, options={"verify_signature": False}).get("tenant")
        except jwt.PyJWTError as exc:
            raise ApiError(401, f"unauthenticated: {exc}") from exc
        if not isinstance(claimed, str) or not valid_tenant(claimed):
            raise ApiError(401, "unauthenticated: the token names no valid tenant")
        if tenant is not None and tenant != claimed:
            raise ApiError(403, "forbidden: the token is for another tenant")
        if self.verifier is None:
            raise ApiError(401, "unauthenticated: no verification keys are configured (STREAMRAG_AUTH_TENANTS)")
        verified = self.verifier.verify(Query(query_id="gateway", tenant=claimed, text="-", auth_token=token))
        if isinstance(verified, str):
            raise ApiError(403 if verified.startswith("forbidden") else 401, verified)
        return Caller(claimed, verified.principal.user, list(verified.principal.roles), token)


class TenantRateLimit:
    """Requests per tenant in a moving window (the ``limits`` library); memory:// or a shared redis:// store."""

    def __init__(self, rate: str, storage_uri: str = "memory://") -> None:
        self.items: list[RateLimitItem] = parse_many(rate) if rate.strip() else []
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def check(self, tenant: str) -> None:
        """Count a request; ApiError 429 (with the seconds to wait) when the tenant is over its limit."""
        for item in self.items:
            if not self.limiter.hit(item, "tenant", tenant):
                reset = self.limiter.get_window_stats(item, "tenant", tenant).reset_time
                wait = max(int(reset - time.time() + 0.999), 1)
                raise ApiError(429, f"rate limit: tenant {tenant} is over {item} (retry in {wait} s)", retry_after_s=wait)
