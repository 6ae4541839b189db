"""Verified identity: with auth on, a query's tenant, user and roles come only from a signed token (JWT,
PyJWT), never from what the message says. Keys are per tenant: an HS256 secret, an RS256 public key, or
a JWKS (keys by ``kid``). A token must carry ``sub``, ``exp`` and ``tenant`` (the query's tenant), live no
longer than ``max_lifetime_s`` (``exp - iat``, or ``exp - now`` without ``iat``) and be at most ``max_token_bytes``
long; the issuer and audience are checked where the tenant's key names them (the production profile requires
both: ``check_production_keys``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cachetools import LRUCache

from streamrag.core.config import Algorithm, TenantKeySettings
from streamrag.core.errors import ConfigError, Refusal
from streamrag.schemas.models import Principal, Query


@dataclass(frozen=True)
class TenantKey:
    algorithm: Algorithm
    keys: Mapping[str | None, Any]  # kid -> key material (None: the only key)
    issuer: str = ""
    audience: str = ""


@dataclass
class TokenVerifier:
    keys: Mapping[str, TenantKey]
    leeway_s: float = 30.0
    max_lifetime_s: float = 86_400.0
    max_token_bytes: int = 8_192
    # clients reuse a token for many queries: (tenant, token) -> (principal, exp) of a verified one
    cache_size: int = 10_000
    _verified: LRUCache[tuple[str, str], tuple[Principal, float]] = field(init=False)

    def __post_init__(self) -> None:
        self._verified = LRUCache(maxsize=max(self.cache_size, 1))

    def verify(self, q: Query) -> Query | Refusal:
        """The query with its principal from the token's claims, or why it is refused."""
        key = (q.tenant, q.auth_token or "")
        hit = self._verified.get(key)
        if hit is not None:
            if hit[1] + self.leeway_s > time.time():  # still valid: the signature was checked before
                return q.model_copy(update={"principal": hit[0], "auth_token": None})
            del self._verified[key]
        return self._verify(q)

    def _verify(self, q: Query) -> Query | Refusal:
        if not q.auth_token:
            return Refusal("unauthenticated", "unauthenticated: the query carries no auth_token")
        if len(q.auth_token.encode("utf-8")) > self.max_token_bytes:
            return Refusal("unauthenticated", f"unauthenticated: the token is larger than {self.max_token_bytes} bytes")
        key = self.keys.get(q.tenant)
        if key is None:
            return Refusal("unauthenticated", f"unauthenticated: no verification key for tenant {q.tenant}")
        try:
            kid = jwt.get_unverified_header(q.auth_token).get("kid")
            material = key.keys.get(kid, key.keys.get(None)) if kid is not None else key.keys.get(None)
            if material is None:
                return Refusal("unauthenticated", f"unauthenticated: unknown key id {str(kid)[:40]!r}")
            claims = jwt.decode(
                q.auth_token, material, algorithms=[key.algorithm], audience=key.audience or None,
                issuer=key.issuer or None, leeway=self.leeway_s,
                options={"require": ["exp", "sub"], "verify_aud": bool(key.audience)},
            )
        except jwt.ExpiredSignatureError:
            return Refusal("unauthenticated", "unauthenticated: the token has expired")
        except jwt.PyJWTError as exc:
            return Refusal("unauthenticated", f"unauthenticated: {exc}")
        if (why := self._lifetime_error(claims)) is not None:
            return why
        if claims.get("tenant") != q.tenant:
            return Refusal("forbidden", "forbidden: the token is for another tenant")
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            return Refusal("unauthenticated", "unauthenticated: the token's roles claim must be a list of strings")
        principal = Principal(user=str(claims["sub"]), roles=roles)
        self._verified[(q.tenant, q.auth_token)] = (principal, float(claims["exp"]))
        return q.model_copy(update={"principal": principal, "auth_token": None})

    def _lifetime_error(self, claims: Mapping[str, Any]) -> Refusal | None:
        exp = float(claims["exp"])
        iat = claims.get("iat")
        start = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else time.time()
        if exp - start > self.max_lifetime_s + self.leeway_s:
            return Refusal("unauthenticated", f"unauthenticated: the token lives longer than {self.max_lifetime_s:g} s (STREAMRAG_AUTH_MAX_TOKEN_LIFETIME_S)")
        return None


def check_production_keys(tenants: Mapping[str, TenantKeySettings]) -> None:
    """The production profile checks every token's issuer and audience: each tenant's key must name both."""
    for tenant, k in tenants.items():
        missing = [n for n in ("issuer", "audience") if not getattr(k, n)]
        if missing:
            raise ConfigError(f"STREAMRAG_AUTH_TENANTS: tenant {tenant} needs {' and '.join(missing)} in the "
                              "production profile (tokens of another issuer or audience would pass)")


def sign_token(secret: str, tenant: str, user: str, roles: Sequence[str] = (), ttl_s: float = 300,
               algorithm: Algorithm = "HS256", kid: str | None = None, issuer: str = "", audience: str = "") -> str:
    """A token for local use (``streamrag ask --sign-secret-env``, tests)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user, "tenant": tenant, "roles": list(roles), "iat": now, "exp": now + int(ttl_s)}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=algorithm, headers={"kid": kid} if kid else None)
