"""What leaves for a topic encrypted where it is kept at rest (core.crypto): the originals dead letters carry
(the rest of the dead letter, stage, reason, position, stays readable for operators and metrics), and cache
entries on the compacted cache topic (they hold answers' text). Without keys, everything passes as it is."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import replace

from pydantic import ValidationError

from streamrag.core.crypto import PayloadCipher, payload_cipher
from streamrag.core.json_limits import Reason
from streamrag.core.records import Outgoing
from streamrag.core.settings import Settings
from streamrag.schemas.models import DeadLetter

log = logging.getLogger(__name__)
DEAD_LETTER_CONTEXT = b"dead-letter"


def cache_topic_context(key: bytes | None) -> bytes:
    return b"cache-topic\x00" + (key or b"")


class TopicSealer:
    def __init__(self, cipher: PayloadCipher | None, *, dead_letters: str, cache: str) -> None:
        self.cipher = cipher
        self.dead_letters = dead_letters
        self.cache = cache

    def outgoing(self, m: Outgoing) -> Outgoing:
        """``m`` as it may be kept: a dead letter's original sealed, a cache entry sealed whole."""
        if self.cipher is None:
            return m
        if m.topic == self.cache:
            return replace(m, value=self.cipher.seal(m.value, cache_topic_context(m.key)))
        if m.topic == self.dead_letters:
            try:  # this process's own dead letter (no size bound: it may carry a whole message)
                d = DeadLetter.model_validate_json(m.value)
            except ValidationError as exc:
                log.error("a dead letter that is not one left as it is: %s", exc)
                return m
            return replace(m, value=self.seal_dead_letter(d).model_dump_json().encode("utf-8"))
        return m

    def seal_dead_letter(self, d: DeadLetter) -> DeadLetter:
        if self.cipher is None or d.sealed:
            return d
        blob = self.cipher.seal(d.original(), DEAD_LETTER_CONTEXT)
        return d.model_copy(update={"original_b64": base64.b64encode(blob).decode("ascii"), "sealed": True})

    def original(self, d: DeadLetter) -> bytes | Reason:
        """A dead letter's original bytes, opened if sealed; a Reason when it cannot be (no key, wrong key)."""
        try:
            raw = d.original()
        except (binascii.Error, ValueError):
            return Reason("the original is not base64")
        if not d.sealed:
            return raw
        if self.cipher is None:
            return Reason("the original is encrypted and no key is set")
        opened = self.cipher.open(raw, DEAD_LETTER_CONTEXT, "dead-letter original")
        return Reason("the original does not decrypt with the keys set") if opened is None else opened

    def cache_value(self, key: bytes | None, value: bytes) -> bytes | None:
        """A cache-topic record's value opened (None: it does not decrypt); as it is without keys."""
        if self.cipher is None:
            return value
        return self.cipher.open(value, cache_topic_context(key), "cache entry")


def sealer_for(s: Settings) -> TopicSealer:
    """The deployment's topic sealer (ConfigError in the production profile without encryption keys)."""
    return TopicSealer(payload_cipher(s), dead_letters=s.topics.dead_letters, cache=s.topics.cache)
