"""The query logic, independent of transport: validate -> (cache) -> embed -> retrieve -> rerank -> answer.

``QueryProcessor.process_batch`` turns raw records into answers and dead letters; every
query whose id can be read gets exactly one answer, an ``error`` one when it is invalid,
so nobody waits forever. Nothing raises out of it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.schemas.models import Answer, Citation, DeadLetter, Query
from streamrag.core.answering import ExtractiveAnswerer, Generator
from streamrag.connectors.sentence_embedder import Embedder
from streamrag.core.ingest.processor import RawRecord, describe_validation, json_object
from streamrag.core.rerank import Reranker, make_reranker
from streamrag.core.retrieval import Retriever
from streamrag.core.security import doc_key
from streamrag.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer and where it goes (the query's reply_to topic, or the answers topic)."""

    answer: Answer
    topic: str | None = None


Output = Reply | DeadLetter


def parse_query(rec: RawRecord) -> Query | tuple[DeadLetter, Answer | None]:
    def bad(stage: str, error: str, data: Any = None) -> tuple[DeadLetter, Answer | None]:
        dead = DeadLetter.make(stage=stage, error=error, value=rec.value, key=rec.key, source=rec.position)
        qid = data.get("query_id") if isinstance(data, dict) else None
        if qid is None and rec.key:
            qid = rec.key.decode("utf-8", "replace")
        tenant = data.get("tenant") if isinstance(data, dict) else None
        ans = None
        if isinstance(qid, str) and qid:
            ans = Answer(query_id=qid[:128], tenant=str(tenant or ""), status="error", error=f"invalid query: {error}")
        return dead, ans

    data = json_object(rec.value)
    if isinstance(data, str):
        return bad("parse", data)
    try:
        return Query.model_validate(data)
    except ValidationError as exc:
        return bad("validate", describe_validation(exc), data)


class QueryProcessor:
    def __init__(
        self,
        settings: Settings,
        store: LanceStore,
        embedder: Embedder,
        generator: Generator | None = None,
        cache: Any = None,
    ) -> None:
        self.s = settings
        self.store = store
        self.embedder = embedder
        self.retriever = Retriever(store, overfetch=settings.overfetch)
        self.generator: Generator = generator or ExtractiveAnswerer()
        self._rerankers: dict[str, Reranker] = {}
        self.cache = cache

    def reranker(self, kind: str) -> Reranker:
        r = self._rerankers.get(kind)
        if r is None:
            r = self._rerankers[kind] = make_reranker(kind, self.s.rerank_model, self.s.device)
        return r

    # -- transport-facing -------------------------------------------------------------------
    def process_batch(self, records: Sequence[RawRecord]) -> list[Output]:
        out: list[Output] = []
        queries: list[Query] = []
        for rec in records:
            try:
                parsed = parse_query(rec)
            except Exception as exc:  # pragma: no cover - defensive
                out.append(DeadLetter.make(stage="parse", error=str(exc), value=rec.value, key=rec.key))
                continue
            if isinstance(parsed, Query):
                if rec.timestamp_ms is not None and time.time() * 1000 - rec.timestamp_ms > self.s.query_max_age_s * 1000:
                    out.append(Reply(self._error(parsed, "expired: older than STREAMRAG_QUERY_MAX_AGE_S when read")))
                    continue
                queries.append(parsed)
            else:
                dead, ans = parsed
                out.append(dead)
                if ans is not None:
                    out.append(Reply(ans))
        if queries:
            for q, a in zip(queries, self.answer_many(queries), strict=True):
                out.append(Reply(a, q.reply_to))
        return out

    # -- the work ---------------------------------------------------------------------------
    def answer_many(self, queries: Sequence[Query]) -> list[Answer]:
        answers: list[Answer | None] = [None] * len(queries)
        todo: list[int] = []
        for i, q in enumerate(queries):
            if _expired(q):
                answers[i] = Answer(query_id=q.query_id, tenant=q.tenant, status="error", error="deadline exceeded")
            elif (hit := self._cache_exact(q)) is not None:
                answers[i] = hit
            else:
                todo.append(i)
        texts: list[str] = []
        spans: list[tuple[int, int]] = []
        for i in todo:
            q = queries[i]
            start = len(texts)
            texts.append(q.text)
            texts.extend(q.options.variants)
            spans.append((start, len(texts)))
        started = time.time()  # before retrieval: index events after this may supersede what it reads
        t0 = time.perf_counter()
        try:
            vecs = self.embedder.embed(texts) if texts else None
        except Exception as exc:
            log.exception("query embedding failed")
            for i in todo:
                answers[i] = self._error(queries[i], f"embedding failed: {exc}")
            return [a for a in answers if a is not None]
        embed_ms = (time.perf_counter() - t0) * 1000 / max(len(todo), 1)
        for i, (a, b) in zip(todo, spans, strict=True):
            q = queries[i]
            try:
                assert vecs is not None
                hit = self._cache_semantic(q, vecs[a], embed_ms)
                if hit is not None:
                    answers[i] = hit
                    continue
                ans, acl = self._answer(q, vecs[a:b], texts[a:b], embed_ms)
                answers[i] = ans
                self._cache_put(q, vecs[a], ans, acl, started)
            except Exception as exc:
                log.exception("answering %s failed", q.query_id)
                answers[i] = self._error(q, f"{type(exc).__name__}: {exc}")
        return [a for a in answers if a is not None]

    # -- cache hooks (never fail a query) ------------------------------------------------------
    def _cache_exact(self, q: Query) -> Answer | None:
        if self.cache is None:
            return None
        t = time.perf_counter()
        try:
            hit = self.cache.lookup_exact(q)
        except Exception:
            log.warning("cache lookup failed", exc_info=True)
            return None
        if hit is None:
            return None
        return hit.model_copy(update={"timings_ms": {"cache": round((time.perf_counter() - t) * 1000, 3)}})

    def _cache_semantic(self, q: Query, vec: Any, embed_ms: float) -> Answer | None:
        if self.cache is None:
            return None
        t = time.perf_counter()
        try:
            hit = self.cache.lookup_semantic(q, vec)
        except Exception:
            log.warning("cache lookup failed", exc_info=True)
            return None
        if hit is None:
            return None
        ms = round((time.perf_counter() - t) * 1000, 3)
        return hit.model_copy(update={"timings_ms": {"embed": round(embed_ms, 3), "cache": ms}})

    def _cache_put(self, q: Query, vec: Any, ans: Answer, acl: list[list[str]], started: float) -> None:
        if self.cache is None:
            return
        try:
            entry = self.cache.make_entry(q, vec, ans, acl)
            if entry is not None:
                self.cache.put(entry, started)
        except Exception:
            log.warning("cache write failed", exc_info=True)

    def answer_one(self, q: Query, vecs: Any, texts: Sequence[str], embed_ms: float = 0.0) -> Answer:
        return self._answer(q, vecs, texts, embed_ms)[0]

    def _answer(self, q: Query, vecs: Any, texts: Sequence[str], embed_ms: float) -> tuple[Answer, list[list[str]]]:
        """The answer and, per citation, the ACL tokens of the cited chunk (for cache safety)."""
        timings = {"embed": round(embed_ms, 3)}
        fusion = q.options.fusion or self.s.fusion
        alpha = self.s.alpha if q.options.alpha is None else q.options.alpha
        res = self.retriever.retrieve(q, [list(v) for v in vecs], list(texts), fusion, alpha)
        timings.update({k: round(v, 3) for k, v in res.timings_ms.items()})
        t = time.perf_counter()
        ranked = self.reranker(q.options.rerank or self.s.rerank).rerank(q.text, res.ranked, q.top_k)
        timings["rerank"] = round((time.perf_counter() - t) * 1000, 3)
        t = time.perf_counter()
        relevant = bool(ranked) and (fusion == "bm25" or res.best_dense >= self.s.answer_min_score)
        if relevant:
            draft = self.generator.generate(q.text, ranked, q.top_k)
            status, text, cites = draft.status, draft.answer, draft.citations
        else:
            status, text, cites = "no_answer", "", []
        timings["answer"] = round((time.perf_counter() - t) * 1000, 3)
        if cites:
            t = time.perf_counter()
            cites = self._enrich(q.tenant, cites)
            timings["enrich"] = round((time.perf_counter() - t) * 1000, 3)
        acl_of = {r.hit.id: list(r.hit.acl) for r in ranked}
        answer = Answer(
            query_id=q.query_id, tenant=q.tenant, status=status,  # type: ignore[arg-type]
            answer=text, citations=cites, timings_ms=timings, model=f"{self.embedder.name}+{self.generator.name}",
        )
        return answer, [acl_of.get(c.chunk_id, []) for c in cites]

    def _enrich(self, tenant: str, cites: list[Citation]) -> list[Citation]:
        """Second stage: document rows (title, metadata, updated_at) for the cited documents only."""
        keys = {c.doc_id: doc_key(tenant, c.doc_id) for c in cites}
        rows = self.store.docs(keys.values())
        out = []
        for c in cites:
            r = rows.get(keys[c.doc_id])
            if r is None:
                out.append(c)
                continue
            upd = datetime.fromtimestamp(r["updated_ms"] / 1000, UTC) if r.get("updated_ms") else None
            out.append(c.model_copy(update={
                "title": r.get("title") or c.title, "metadata": json.loads(r.get("metadata_json") or "{}"),
                "updated_at": upd,
            }))
        return out

    @staticmethod
    def _error(q: Query, msg: str) -> Answer:
        return Answer(query_id=q.query_id, tenant=q.tenant, status="error", error=msg)


def _expired(q: Query) -> bool:
    if q.deadline_ms is None or q.sent_at is None:
        return False
    sent = q.sent_at if q.sent_at.tzinfo else q.sent_at.replace(tzinfo=UTC)
    return (datetime.now(UTC) - sent).total_seconds() * 1000 > q.deadline_ms
