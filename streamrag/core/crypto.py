"""Envelope encryption of payloads kept outside the index: cache payloads (Redis, the cache topic) and the
originals dead letters carry (the dead-letter topic).

AES-256-GCM (``cryptography``) under deployment keys read from the variable STREAMRAG_ENCRYPTION_KEYS_ENV names
(comma-separated base64 of 32 bytes each): the first key encrypts, every key decrypts, so a key is
rotated by putting the new one first and dropping the old one once its payloads have expired.

Envelope: ``version (1 byte, 0x01) | key id (4 bytes: SHA-256 of the key) | nonce (12 bytes) | ciphertext+tag``,
authenticated with a context (a cache payload's tenant and key, "dead-letter"): a payload copied under another
key or tenant does not open. A payload that does not open (wrong or retired key, tampered, truncated, or stored
in clear while keys are set) is ``None`` to the caller, logged at most once a minute and counted in
``streamrag_decrypt_failures_total``: a cache miss, a dead letter replay skips — never an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streamrag.core import telemetry
from streamrag.core.errors import ConfigError
from streamrag.core.settings import Settings

log = logging.getLogger(__name__)
VERSION = 1
KEY_BYTES = 32
_ID_BYTES = 4
_NONCE_BYTES = 12
_HEADER = 1 + _ID_BYTES + _NONCE_BYTES
_TAG_BYTES = 16


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:_ID_BYTES]


def new_key() -> str:
    """A fresh key in the variable's format (``openssl rand -base64 32`` makes one too: both alphabets are read)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def parse_keys(text: str) -> list[bytes]:
    """The keys of the variable's ``text``; ConfigError naming the bad entry's position (never its value)."""
    keys: list[bytes] = []
    for i, part in enumerate(p.strip() for p in text.replace("\n", ",").split(",")):
        if not part:
            continue
        try:
            key = base64.b64decode(part.replace("-", "+").replace("_", "/") + "=" * (-len(part) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"encryption key #{i + 1} is not base64") from exc
        if len(key) != KEY_BYTES:
            raise ConfigError(f"encryption key #{i + 1} has {len(key)} bytes, not {KEY_BYTES} (AES-256)")
        keys.append(key)
    return keys


class PayloadCipher:
    """Seals and opens payloads under the deployment's keys (the first one seals)."""

    def __init__(self, keys: Sequence[bytes], log_every_s: float = 60.0) -> None:
        if not keys:
            raise ConfigError("a payload cipher needs at least one key")
        self._aead = {key_id(k): AESGCM(k) for k in reversed(keys)}  # the first key wins an id clash
        self._sealing = key_id(keys[0])
        self.failures = 0
        self.log_every_s = log_every_s
        self._last_log = -log_every_s
        self._lock = threading.Lock()

    def seal(self, data: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return bytes([VERSION]) + self._sealing + nonce + self._aead[self._sealing].encrypt(nonce, data, context)

    def open(self, blob: bytes, context: bytes, what: str = "payload") -> bytes | None:
        """The plaintext, or None (counted under ``what``, logged at most once per interval)."""
        why = ""
        aead = self._aead.get(blob[1:1 + _ID_BYTES])
        if len(blob) < _HEADER + _TAG_BYTES or blob[0] != VERSION:
            why = "not an encrypted payload (stored in clear, or another format)"
        elif aead is None:
            why = "sealed with a key this deployment does not have"
        else:
            try:
                return aead.decrypt(blob[1 + _ID_BYTES:_HEADER], blob[_HEADER:], context)
            except InvalidTag:
                why = "does not authenticate (tampered, or stored under another key or tenant)"
        self._failed(what, why)
        return None

    def _failed(self, what: str, why: str) -> None:
        telemetry.DECRYPT_FAILURES.labels(what).inc()
        with self._lock:
            self.failures += 1
            now = time.monotonic()
            quiet = now - self._last_log < self.log_every_s
            if not quiet:
                self._last_log = now
        if not quiet:
            log.warning("a stored %s did not decrypt and is treated as missing: %s (%d so far)", what, why,
                        self.failures)


def cipher_from(s: Settings, value: str) -> PayloadCipher | None:
    """The cipher of the keys in ``value`` (the variable's text); None without keys, a ConfigError in the
    production profile without keys."""
    keys = parse_keys(value)
    if keys:
        return PayloadCipher(keys)
    where = f"${s.encryption.keys_env or '(STREAMRAG_ENCRYPTION_KEYS_ENV is empty)'}"
    if s.worker.profile == "production":
        raise ConfigError(f"the production profile needs encryption keys in {where} (cache payloads and dead "
                          f"letters' originals are encrypted with them); make one with `openssl rand -base64 32`")
    return None


def payload_cipher(s: Settings) -> PayloadCipher | None:
    """The deployment's cipher, from the variable STREAMRAG_ENCRYPTION_KEYS_ENV names (see ``cipher_from``)."""
    return cipher_from(s, os.environ.get(s.encryption.keys_env, "") if s.encryption.keys_env else "")
