"""Verification keys from the places STREAMRAG_AUTH_TENANTS names: environment variables, PEM and JWKS files."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt

from streamrag.core.auth import TenantKey, TokenVerifier, check_production_keys
from streamrag.core.config import AuthConfig, TenantKeySettings
from streamrag.core.errors import ConfigError


def load_key(tenant: str, k: TenantKeySettings) -> TenantKey:
    keys: dict[str | None, Any] = {}
    try:
        if k.algorithm == "HS256":
            secret = os.environ.get(k.secret_env, "") if k.secret_env else ""
            if len(secret) < 32:
                raise ConfigError(f"tenant {tenant}: HS256 needs a secret of at least 32 characters in "
                                  f"${k.secret_env or '(secret_env not set)'}")
            keys[None] = secret
        elif k.jwks_file:
            for jwk in json.loads(Path(k.jwks_file).read_text())["keys"]:
                keys[jwk.get("kid")] = jwt.PyJWK(jwk).key
        elif k.public_key_file:
            keys[None] = Path(k.public_key_file).read_text()
        else:
            raise ConfigError(f"tenant {tenant}: RS256 needs public_key_file or jwks_file")
    except (OSError, ValueError, KeyError, jwt.PyJWTError) as exc:
        raise ConfigError(f"tenant {tenant}: cannot read its verification key: {exc}") from exc
    return TenantKey(k.algorithm, keys, k.issuer, k.audience)


def load_verifier(tenants: Mapping[str, TenantKeySettings]) -> TokenVerifier:
    return TokenVerifier({t: load_key(t, k) for t, k in tenants.items()})


def verifier_for(auth: AuthConfig, production: bool) -> TokenVerifier:
    """The verifier of a process with auth on: in the production profile every tenant key names its issuer and
    audience (ConfigError otherwise); tokens are bounded in lifetime and size."""
    if production:
        check_production_keys(auth.tenants)
    return TokenVerifier({t: load_key(t, k) for t, k in auth.tenants.items()},
                         max_lifetime_s=auth.max_token_lifetime_s, max_token_bytes=auth.max_token_bytes)
