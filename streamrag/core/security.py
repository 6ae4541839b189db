"""Keys and ACL tokens.

Doc keys, ACL entries and metadata values are hashed into hex tokens that a search's scope (core/scope.py)
names and the store filters on; tenants match a strict pattern. A document with no ACL (no users, no roles)
is visible to every principal of its tenant: it carries the token ``*``. (The stores quote whatever they
write into a filter: connectors/lancedb_filters.py.)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

from streamrag.schemas.models import Acl, Principal

PUBLIC = "*"
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def valid_tenant(tenant: str) -> bool:
    return bool(_TENANT_RE.match(tenant))


def _h(*parts: str, n: int = 32) -> str:
    m = hashlib.sha256()
    for p in parts:
        m.update(p.encode("utf-8"))
        m.update(b"\x00")
    return m.hexdigest()[:n]


def doc_key(tenant: str, doc_id: str) -> str:
    return _h("doc", tenant, doc_id)


def chunk_id(tenant: str, doc_id: str, chunk_no: int) -> str:
    return f"{doc_key(tenant, doc_id)}:{chunk_no:05d}"


def content_hash(title: str, text: str, metadata: dict[str, object], acl: Acl) -> str:
    blob = json.dumps(
        {"t": title, "x": text, "m": metadata, "a": [sorted(acl.users), sorted(acl.roles)]},
        sort_keys=True,
        default=str,
    )
    return _h(blob)


def acl_tokens(acl: Acl) -> list[str]:
    if not acl.users and not acl.roles:
        return [PUBLIC]
    return sorted({f"u:{_h('user', u, n=24)}" for u in acl.users} | {f"r:{_h('role', r, n=24)}" for r in acl.roles})


def principal_tokens(principal: Principal) -> list[str]:
    toks = {PUBLIC}
    if principal.user:
        toks.add(f"u:{_h('user', principal.user, n=24)}")
    toks |= {f"r:{_h('role', r, n=24)}" for r in principal.roles}
    return sorted(toks)


def principal_may_see(principal_toks: Iterable[str], doc_toks: Iterable[str]) -> bool:
    return bool(set(principal_toks) & set(doc_toks))


def meta_token(key: str, value: object) -> str:
    return f"m:{_h('meta', key, json.dumps(value, sort_keys=True, default=str), n=24)}"


def meta_tokens(metadata: dict[str, object]) -> list[str]:
    return sorted(meta_token(k, v) for k, v in metadata.items())
