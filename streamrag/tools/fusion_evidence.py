"""Fusion evidence measured once where documents were written without a worker (``streamrag ingest``): kept beside
the index version (connectors/lancedb_evidence.py), so that a one-off ``streamrag ask`` reads it and neither
measures nor waits (core/evidence.py)."""

from __future__ import annotations

import time

from streamrag.connectors.lancedb_evidence import LanceEvidenceStore
from streamrag.core.evidence import Evidence, EvidenceCache, measure
from streamrag.core.settings import Settings
from streamrag.flows.index_views import IndexViews


def refresh_evidence(s: Settings, tenant: str) -> Evidence | None:
    """Measure ``tenant``'s evidence on the active index version and keep it; None where fusion does not use it
    (not ``auto``, or STREAMRAG_FUSION_EVIDENCE_TTL_S 0) or the tenant has too few chunks to measure."""
    view = IndexViews(s).current()
    r = view.settings.retrieval
    if r.fusion != "auto" or r.fusion_evidence_ttl_s <= 0:
        return None
    texts = view.store.sample_texts(tenant, EvidenceCache.POOL)
    ev = measure(texts, view.embedder.embed, seed=len(texts), embed_queries=view.embedder.embed_queries)
    if ev is not None:
        LanceEvidenceStore(s.lancedb_path()).save(view.name, tenant, time.time(), ev)
    return ev
