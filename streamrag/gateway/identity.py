"""Who is asking: the tenant, user and roles of a request, and whether the tenant may ask again now.

With auth on, identity comes only from ``Authorization: Bearer <JWT>``, verified with the same per-tenant keys
as the query worker (``core.auth.TokenVerifier``); a ``tenant`` field naming another tenant is refused. With auth
off (development), the request names its tenant (and optionally its user) itself.

``Limits`` counts requests per tenant and per user, failed authentications per client address (too many: 429
before the token is even read), and how many streams and waiting uploads each tenant has open at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from streamrag.core.auth import TokenVerifier
from streamrag.core.config import GatewayConfig
from streamrag.core.errors import ConfigError, Refusal
from streamrag.core.security import valid_tenant
from streamrag.gateway.errors import ApiError, status_of
from streamrag.schemas.models import Query

# the longest token read: Query.auth_token's max_length, so the gateway and the worker take the same tokens
MAX_TOKEN_CHARS = 8_192


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
        if len(token) > MAX_TOKEN_CHARS:
            raise ApiError(401, f"unauthenticated: the token is over {MAX_TOKEN_CHARS} characters")
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
        if isinstance(verified, Refusal):
            raise ApiError(status_of(verified.code), verified.message)
        return Caller(claimed, verified.principal.user, list(verified.principal.roles), token)


class RateLimit:
    """Hits per key in a moving window (the ``limits`` library) in a memory:// or shared redis:// storage."""

    def __init__(self, rate: str, storage: Storage, scope: str) -> None:
        self.items: list[RateLimitItem] = parse_many(rate) if rate.strip() else []
        self.limiter = MovingWindowRateLimiter(storage)
        self.scope = scope

    def retry_after(self, key: str, hit: bool = True) -> int | None:
        """Count a hit (or only look, ``hit=False``); the seconds to wait when ``key`` is over a limit, else None."""
        for item in self.items:
            ok = self.limiter.hit(item, self.scope, key) if hit else self.limiter.test(item, self.scope, key)
            if not ok:
                reset = self.limiter.get_window_stats(item, self.scope, key).reset_time
                return max(int(reset - time.time() + 0.999), 1)
        return None


class Limits:
    """Per tenant and per user request rates, failed authentications per client address, and each tenant's
    open streams and waiting uploads. The rates share one storage: memory:// (this replica) or redis://."""

    def __init__(self, cfg: GatewayConfig) -> None:
        storage = storage_from_string(cfg.rate_limit_storage)
        if not isinstance(storage, Storage):
            raise ConfigError(f"STREAMRAG_GATEWAY_RATE_LIMIT_STORAGE: {cfg.rate_limit_storage} is an async storage")
        self.tenant = RateLimit(cfg.rate_limit, storage, "tenant")
        self.user = RateLimit(cfg.user_rate_limit, storage, "user")
        self.auth_failures = RateLimit(cfg.auth_failure_limit, storage, "auth-failure")
        self.streams = InFlight("streams", cfg.max_streams)
        self.uploads = InFlight("waiting uploads", cfg.max_waiting_uploads)

    def before_auth(self, address: str) -> None:
        """429 when this client address failed to authenticate too often lately."""
        wait = self.auth_failures.retry_after(address, hit=False)
        if wait is not None:
            raise ApiError(429, f"too many failed authentications from {address} (retry in {wait} s)",
                           retry_after_s=wait)

    def auth_failed(self, address: str) -> None:
        self.auth_failures.retry_after(address)

    def check(self, caller: Caller) -> None:
        """Count a request of the caller's tenant and user; 429 (with the seconds to wait) when over a limit."""
        wait = self.tenant.retry_after(caller.tenant)
        if wait is not None:
            raise ApiError(429, f"rate limit: tenant {caller.tenant} is over its limit (retry in {wait} s)",
                           retry_after_s=wait)
        if caller.user:
            wait = self.user.retry_after(f"{caller.tenant}/{caller.user}")
            if wait is not None:
                raise ApiError(429, f"rate limit: user {caller.user} is over its limit (retry in {wait} s)",
                               retry_after_s=wait)


class InFlight:
    """How many of something each tenant has open at once (this replica; one event loop, so no lock)."""

    def __init__(self, what: str, most: int) -> None:
        self.what = what
        self.most = most
        self.open: dict[str, int] = {}

    def acquire(self, tenant: str) -> Slot:
        """A slot of the tenant's (release it when done), or ApiError 429 when all are taken."""
        if self.open.get(tenant, 0) >= self.most:
            raise ApiError(429, f"tenant {tenant} has {self.most} {self.what} open already (the most at once)",
                           retry_after_s=1)
        self.open[tenant] = self.open.get(tenant, 0) + 1
        return Slot(self, tenant)

    def release(self, tenant: str) -> None:
        left = self.open.get(tenant, 0) - 1
        if left > 0:
            self.open[tenant] = left
        else:
            self.open.pop(tenant, None)


class Slot:
    """One taken place of an ``InFlight``; releasing it twice releases it once."""

    def __init__(self, owner: InFlight, tenant: str) -> None:
        self.owner = owner
        self.tenant = tenant
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.owner.release(self.tenant)
