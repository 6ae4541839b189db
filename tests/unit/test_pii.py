"""PII redaction at ingest: with it on, none of the planted PII reaches the index (chunks or document rows)."""

from __future__ import annotations

import json
import re

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.config import PiiSettings
from streamrag.core.pii import Redactor
from streamrag.core.settings import Settings
from tests.conftest import Indexer, change, rec
from tests.fakes import HashEmbedder

PII = {
    "email": ["jane.doe@example.com", "ops+alerts@mail.acme.co.uk"],
    "phone": ["+49 30 1234567", "+1 415-555-2671", "030 98765432"],
    "card": ["4111 1111 1111 1111", "5500-0000-0000-0004"],
    "iban": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"],
    "ip": ["192.168.1.20", "2001:db8::1"],
}
CORPUS = [
    f"Customer {i}: write to {PII['email'][i % 2]} or call {PII['phone'][i % 3]}. Paid with card "
    f"{PII['card'][i % 2]}; refunds go to {PII['iban'][i % 2]}. Last login from {PII['ip'][i % 2]}. "
    f"Ticket EMP-{100000 + i} closed after 3 days; the fee was 180 euros in 2024."
    for i in range(6)
]


def stored_text(store: LanceStore, tenant: str) -> str:
    rows = store.chunk_rows(tenant)
    return json.dumps([{k: v for k, v in r.items() if isinstance(v, str)} for r in rows])


def test_no_planted_pii_reaches_the_index(settings: Settings, store: LanceStore) -> None:
    s = settings.model_copy(update={"pii_redaction": True, "pii_tenants": {
        "acme": PiiSettings(patterns={"employee_id": r"EMP-\d{6}"})}})
    ix = Indexer(s, store, HashEmbedder())
    ix.process_batch([rec(change(f"c{i}", 1, t, title=f"Mail {PII['email'][0]}", metadata={"owner": PII["email"][1]}))
                      for i, t in enumerate(CORPUS)])
    text = stored_text(store, "acme") + json.dumps(store.docs([r["doc_key"] for r in store.chunk_rows("acme")]))
    for kind, values in PII.items():
        for v in values:
            assert v not in text and v.replace(" ", "") not in text, (kind, v)
    assert not re.search(r"EMP-\d{6}", text)
    assert "[EMAIL]" in text and "[CARD]" in text and "[IBAN]" in text and "[IP]" in text and "[PHONE]" in text
    assert "180 euros in 2024" in text and "3 days" in text  # ordinary numbers stay
    assert ix.stages.redactors is not None and ix.stages.redactors.counts["email"] >= 6


def test_redaction_is_per_tenant_and_off_by_default(settings: Settings, store: LanceStore) -> None:
    s = settings.model_copy(update={"pii_tenants": {"acme": PiiSettings()}})
    ix = Indexer(s, store, HashEmbedder())
    ix.process_batch([rec(change("a", 1, CORPUS[0])), rec(change("g", 1, CORPUS[0], tenant="globex"))])
    assert PII["email"][0] not in stored_text(store, "acme")
    assert PII["email"][0] in stored_text(store, "globex")


def test_checksums_keep_look_alikes() -> None:
    r = Redactor(PiiSettings(kinds=["card", "iban", "ip"]))
    text = "Order 4111 1111 1111 1112, account DE00 0000 0000 0000 0000 00, version 1.2.3.4.5, 999.1.1.1."
    assert r.redact(text) == text  # Luhn, mod-97 and address checks fail: nothing is redacted


