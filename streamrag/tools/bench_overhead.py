"""``streamrag bench overhead``: what metrics, audit records, verified identities and PII redaction cost, with
and without in the same run (in-process, the same index and questions; runs interleaved to share noise).

Query: per-query latency of parse (JWT verification) -> answer (metrics observed) -> messages (audit record)
against the same processor with those off. Ingest: chunks/s of the ingest dataflow over the same documents
with metrics and PII redaction on and off. Transport (Kafka, one extra audit message per answer in the same
flush) is not included."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamrag.connectors.embedding_cache import CachingEmbedder
from streamrag.core import telemetry
from streamrag.core.auth import sign_token
from streamrag.core.config import TenantKeySettings
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.flows import query as query_flow
from streamrag.flows.components import embedder_for, make_ingest_stages, make_query_processor, make_store
from streamrag.flows.local import ingest_records
from streamrag.tools.bench_common import machine
from streamrag.tools.bench_generate import pct
from streamrag.tools.evaluate import TENANT, corpus_records, load_beir

SECRET = "bench-secret-" + "x" * 32


def _records(dataset: Path, n: int) -> tuple[list[RawRecord], list[str]]:
    corpus, queries, _ = load_beir(dataset)
    recs = []
    for r in corpus_records(corpus):
        recs.append(r)
        if len(recs) >= n:
            break
    return recs, list(queries.values())


def _no_metrics() -> Callable[[], None]:
    """Swap the metric calls for no-ops; returns the undo."""
    saved = {name: getattr(telemetry, name) for name in dir(telemetry) if name.isupper()}

    class _Null:
        def labels(self, *a: Any, **k: Any) -> _Null:
            return self

        def __getattr__(self, _: str) -> Callable[..., Any]:
            return lambda *a, **k: _NullCtx()

    class _NullCtx:
        def __enter__(self) -> None:
            return None

        def __exit__(self, *a: Any) -> None:
            return None

    for name in saved:
        setattr(telemetry, name, _Null())
    obs = telemetry.observe_stages
    telemetry.observe_stages = lambda *a, **k: None  # type: ignore[assignment]

    def undo() -> None:
        for name, v in saved.items():
            setattr(telemetry, name, v)
        telemetry.observe_stages = obs  # type: ignore[assignment]

    return undo


def bench_overhead(s: Settings, dataset: Path, docs: int, n: int, rounds: int, work: Path,
                   log: Callable[[str], None]) -> dict[str, Any]:
    recs, questions = _records(dataset, docs)
    questions = questions[:n]
    base = s.model_copy(update={"lancedb_uri": str(work / f"ovh-{uuid.uuid4().hex[:6]}"), "generator": "extractive",
                                "cache_enabled": False, "fts_rebuild_every_s": 1e9, "optimize_every_s": 1e9})
    raw = embedder_for(base)
    emb = CachingEmbedder(raw, work / "embcache.sqlite")
    emb.embed(questions)  # warm the cache: both sides embed from it
    on = base.model_copy(update={"profile": "production", "pii_redaction": True, "audit_enabled": True,
                                 "auth_tenants": {TENANT: TenantKeySettings(secret_env="STREAMRAG_BENCH_SECRET", issuer="bench",
                                                                            audience="streamrag")}})
    off = base.model_copy(update={"audit_enabled": False})
    os.environ["STREAMRAG_BENCH_SECRET"] = SECRET
    ingest: dict[str, list[float]] = {"on": [], "off": []}
    query: dict[str, list[float]] = {"on": [], "off": []}
    token = sign_token(SECRET, TENANT, "bench-user", ["staff"], ttl_s=3600, issuer="bench", audience="streamrag")
    for r in range(rounds):
        for mode, cfg in (("off", off), ("on", on)) if r % 2 == 0 else (("on", on), ("off", off)):
            undo = _no_metrics() if mode == "off" else (lambda: None)
            try:
                cfg_r = cfg.model_copy(update={"lancedb_uri": f"{cfg.index.lancedb_uri}-{mode}-{r}"})
                store = make_store(cfg_r)
                t0 = time.perf_counter()
                # the real encoder for ingest (what users' chunks/s include); cached query vectors for queries
                rep = ingest_records(cfg_r, recs, stages=make_ingest_stages(cfg_r, embedder=raw, store=store))
                chunks = rep.counts()["chunks"] or 1
                ingest[mode].append(chunks / (time.perf_counter() - t0))
                store.maintain(force=True)
                qp = make_query_processor(cfg_r, embedder=emb, store=store)
                redactors = query_flow.audit_redactors(cfg_r)
                for i, text in enumerate(questions):
                    body: dict[str, Any] = {"query_id": f"{mode}{r}-{i}", "tenant": TENANT, "text": text, "top_k": 5}
                    if mode == "on":
                        body["auth_token"] = token
                    rec = RawRecord(value=json.dumps(body).encode(), key=body["query_id"].encode())
                    t1 = time.perf_counter()
                    for item in qp.process_batch([rec]):
                        query_flow.to_messages(cfg_r, item, redactors)
                    query[mode].append((time.perf_counter() - t1) * 1000)
            finally:
                undo()
        log(f"round {r + 1}/{rounds}: ingest on {ingest['on'][-1]:.1f} / off {ingest['off'][-1]:.1f} chunks/s")

    def q(mode: str) -> dict[str, float]:
        return {"p50_ms": pct(query[mode], 50), "p95_ms": pct(query[mode], 95)}

    q_on, q_off = q("on"), q("off")
    i_on, i_off = round(sum(ingest["on"]) / rounds, 1), round(sum(ingest["off"]) / rounds, 1)
    res: dict[str, Any] = {
        "machine": machine(s), "documents": len(recs), "questions": len(questions), "rounds": rounds, "query_on": q_on, "query_off": q_off,
        "ingest_chunks_per_s_on": i_on, "ingest_chunks_per_s_off": i_off,
        "query_p95_overhead": round(q_on["p95_ms"] / max(q_off["p95_ms"], 1e-9) - 1, 4),
        "ingest_overhead": round(1 - i_on / max(i_off, 1e-9), 4),
    }
    log(f"overhead: {res}")
    return res
