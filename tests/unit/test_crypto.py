"""Encryption at rest of what is kept outside the index (core.crypto, core.sealing, core.cache.sealed): envelopes,
rotation, wrong keys and tampering as misses (never errors), the production profile's need for a key."""

from __future__ import annotations

import base64

import pytest
from prometheus_client import REGISTRY

from streamrag.core.cache.sealed import sealed
from streamrag.core.cache.storage import EntryStorage
from streamrag.core.crypto import PayloadCipher, cipher_from, new_key, parse_keys
from streamrag.core.errors import ConfigError
from streamrag.core.ports import PayloadStore
from streamrag.core.records import Outgoing, RawRecord
from streamrag.core.sealing import TopicSealer
from streamrag.core.settings import Settings
from streamrag.schemas.models import Answer, CacheEntry, DeadLetter
from tests.contracts import PayloadStoreContract
from tests.fakes import MemoryPayloadStore

SECRET = "the merger closes on 14 March at 41 dollars a share"
OLD, NEW = new_key(), new_key()


def cipher(*keys: str) -> PayloadCipher:
    return PayloadCipher(parse_keys(",".join(keys)))


def failures(what: str) -> float:
    return REGISTRY.get_sample_value("streamrag_decrypt_failures_total", {"what": what}) or 0.0


def entry(key: str = "k1", tenant: str = "acme") -> CacheEntry:
    return CacheEntry(tenant=tenant, cache_key=key, normalized_text="when does the merger close", scope="s",
                      options_hash="o", answer=Answer(query_id="q", tenant=tenant, status="ok", answer=SECRET))


def test_keys_parse_in_both_base64_alphabets_and_bad_ones_are_refused_without_their_value() -> None:
    raw = bytes(range(32))
    std, url = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    assert parse_keys(f" {std} ,\n{url.rstrip('=')}") == [raw, raw]
    assert parse_keys("") == [] and parse_keys(" , ") == []
    with pytest.raises(ConfigError, match="#2 has 16 bytes") as short:
        parse_keys(f"{std},{base64.b64encode(b'x' * 16).decode()}")
    assert std not in str(short.value)
    with pytest.raises(ConfigError, match="#1 is not base64"):
        parse_keys("not*base64*at*all!")


def test_envelope_round_trip_rotation_and_misses() -> None:
    old = cipher(OLD)
    blob = old.seal(SECRET.encode(), b"ctx")
    assert blob[0] == 1 and SECRET.encode() not in blob
    assert old.seal(SECRET.encode(), b"ctx") != blob  # a fresh nonce each time
    rotated = cipher(NEW, OLD)  # the new key first: it seals, the old one still opens
    assert rotated.open(blob, b"ctx") == SECRET.encode()
    assert old.open(rotated.seal(b"x", b"ctx"), b"ctx") is None  # the old deployment does not have the new key
    before = failures("payload")
    wrong = cipher(NEW)
    assert wrong.open(blob, b"ctx") is None  # a wrong key: missing, not an error
    assert old.open(blob, b"other context") is None
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    assert old.open(tampered, b"ctx") is None
    assert old.open(b'{"in": "clear"}', b"ctx") is None and old.open(b"", b"ctx") is None
    assert failures("payload") - before == 5 and wrong.failures == 1 and old.failures == 5


def test_production_needs_keys_development_runs_without() -> None:
    prod = Settings(profile="production")
    with pytest.raises(ConfigError, match=r"\$STREAMRAG_ENCRYPTION_KEYS"):
        cipher_from(prod, "")
    assert isinstance(cipher_from(prod, OLD), PayloadCipher)
    assert cipher_from(Settings(), "") is None


def test_cache_payloads_are_sealed_bound_to_their_key_and_a_wrong_key_is_a_miss() -> None:
    store = MemoryPayloadStore()
    EntryStorage(sealed(store, cipher(OLD))).save(entry(), ttl_s=60)
    raw = store.get("acme", "k1")
    assert raw is not None and SECRET.encode() not in raw and b"merger" not in raw
    got = EntryStorage(sealed(store, cipher(NEW, OLD))).fetch("acme", "k1")
    assert got is not None and got.answer.answer == SECRET  # rotation: the old key still opens
    before = failures("cache payload")
    assert EntryStorage(sealed(store, cipher(NEW))).fetch("acme", "k1") is None  # wrong key: a miss
    store.put("acme", "k2", raw, 60)  # the same bytes under another key (or tenant) do not open
    store.put("beta", "k1", raw, 60)
    assert EntryStorage(sealed(store, cipher(OLD))).fetch("acme", "k2") is None
    assert EntryStorage(sealed(store, cipher(OLD))).fetch("beta", "k1") is None
    assert failures("cache payload") - before == 3
    plain = MemoryPayloadStore()  # without keys nothing changes
    EntryStorage(sealed(plain, None)).save(entry(), ttl_s=60)
    assert SECRET.encode() in (plain.get("acme", "k1") or b"")


def test_dead_letter_originals_and_cache_topic_entries_are_sealed_and_open_again() -> None:
    s = Settings()
    sealer = TopicSealer(cipher(OLD), dead_letters=s.topics.dead_letters, cache=s.topics.cache)
    rec = RawRecord(value=SECRET.encode(), key=b"acme/merger", topic=s.topics.documents, partition=0, offset=7)
    out = sealer.outgoing(Outgoing.of(s.topics.dead_letters, rec.key, rec.dead("parse", "invalid_record", "not JSON"), rec))
    assert SECRET.encode() not in out.value and out.source is rec
    d = DeadLetter.model_validate_json(out.value)
    assert d.sealed and d.stage == "parse" and d.source.offset == 7 and SECRET.encode() not in d.original()
    again = DeadLetter.model_validate_json(sealer.outgoing(Outgoing(s.topics.dead_letters, rec.key, out.value)).value)
    assert again.original_b64 == d.original_b64  # sealed once only
    assert TopicSealer(cipher(NEW, OLD), dead_letters="", cache="").original(d) == SECRET.encode()
    assert "does not decrypt" in TopicSealer(cipher(NEW), dead_letters="", cache="").original(d)
    assert "no key" in TopicSealer(None, dead_letters="", cache="").original(d)
    e = sealer.outgoing(Outgoing.of(s.topics.cache, "acme/k1", entry()))
    assert SECRET.encode() not in e.value
    assert CacheEntry.model_validate_json(sealer.cache_value(b"acme/k1", e.value) or b"{}").answer.answer == SECRET
    assert sealer.cache_value(b"acme/k2", e.value) is None
    answers = Outgoing.of(s.topics.answers, "q", entry().answer)
    assert sealer.outgoing(answers) is answers  # other topics pass as they are


def test_s3_server_side_encryption_options_for_lancedb() -> None:
    from streamrag.connectors.lancedb_connect import s3_options
    from streamrag.core.config import EncryptionConfig

    assert s3_options(EncryptionConfig()) == {}
    assert s3_options(EncryptionConfig(s3_sse="AES256", s3_sse_kms_key_id="ignored")) == {
        "aws_server_side_encryption": "AES256"}
    assert s3_options(EncryptionConfig(s3_sse="aws:kms", s3_sse_kms_key_id="arn:aws:kms:eu-west-1:1:key/k")) == {
        "aws_server_side_encryption": "aws:kms", "aws_sse_kms_key_id": "arn:aws:kms:eu-west-1:1:key/k"}
    with pytest.raises(ValueError, match="AES256"):
        Settings(encryption_s3_sse="DES")


class TestSealedPayloadStore(PayloadStoreContract):
    """The encrypted store is a payload store like any other (the same contract as Redis and the fake)."""

    def make(self) -> PayloadStore:
        return sealed(MemoryPayloadStore(), cipher(OLD))


def test_a_production_worker_without_keys_stops_at_its_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamrag.core.sealing import sealer_for

    monkeypatch.delenv("STREAMRAG_ENCRYPTION_KEYS", raising=False)
    with pytest.raises(ConfigError, match="production profile needs encryption keys"):
        sealer_for(Settings(profile="production"))
    monkeypatch.setenv("STREAMRAG_ENCRYPTION_KEYS", OLD)
    assert sealer_for(Settings(profile="production")).cipher is not None
    assert sealer_for(Settings()).cipher is not None  # keys set: development encrypts too
