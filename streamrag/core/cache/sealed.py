"""Cache payloads encrypted before they reach the shared store (core.crypto): a ``PayloadStore`` in front of
another. Each payload is bound to its tenant and key, so one copied under another key or tenant does not open;
one that does not open is a miss (logged, counted), never an error."""

from __future__ import annotations

from streamrag.core.crypto import PayloadCipher
from streamrag.core.ports import PayloadStore


def payload_context(tenant: str, cache_key: str) -> bytes:
    return f"cache\x00{tenant}\x00{cache_key}".encode()


class SealedPayloads:
    def __init__(self, inner: PayloadStore, cipher: PayloadCipher) -> None:
        self.inner = inner
        self.cipher = cipher

    def get(self, tenant: str, cache_key: str) -> bytes | None:
        raw = self.inner.get(tenant, cache_key)
        return None if raw is None else self.cipher.open(raw, payload_context(tenant, cache_key), "cache payload")

    def put(self, tenant: str, cache_key: str, payload: bytes, ttl_s: float) -> bool:
        return self.inner.put(tenant, cache_key, self.cipher.seal(payload, payload_context(tenant, cache_key)), ttl_s)

    def delete(self, tenant: str, keys: list[str]) -> None:
        self.inner.delete(tenant, keys)


def sealed(inner: PayloadStore, cipher: PayloadCipher | None) -> PayloadStore:
    """``inner`` behind the cipher, or ``inner`` itself without one (development, no keys)."""
    return inner if cipher is None else SealedPayloads(inner, cipher)
