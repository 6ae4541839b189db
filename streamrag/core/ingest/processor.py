"""The ingest logic, independent of where records come from (Kafka or files).

``IngestProcessor.process_batch`` takes raw records and returns index events and dead
letters. Per record: parse and validate -> keep the newest version per document in the
batch -> ignore versions not newer than the store's -> chunk -> embed (batched) -> one
atomic write for the whole batch. Any failure is confined to its record and becomes a
dead letter with the stage and the reason; nothing raises out of ``process_batch``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from streamrag.connectors.lancedb_store import DocState, DocWrite, LanceStore
from streamrag.schemas.models import DeadLetter, DocumentChange, IndexEvent, SourcePosition
from streamrag.core.chunking import Chunk, chunk_text
from streamrag.connectors.sentence_embedder import Embedder
from streamrag.core.security import acl_tokens, chunk_id, content_hash, doc_key, meta_tokens
from streamrag.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One input record, whatever its origin."""

    value: bytes | None
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = None

    @property
    def position(self) -> SourcePosition:
        return SourcePosition(topic=self.topic, partition=self.partition, offset=self.offset)


Output = IndexEvent | DeadLetter


def describe_validation(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {e.get('msg')}")
    return "; ".join(parts)


def json_object(value: bytes | None, empty: str = "empty message") -> dict[str, Any] | str:
    """Bytes -> a JSON object, or the reason it is not one."""
    if value is None:
        return empty
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"malformed JSON: {exc}"
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    return data


def parse_change(rec: RawRecord) -> DocumentChange | DeadLetter:
    """Bytes -> DocumentChange, or a dead letter saying exactly what is wrong."""

    def dead(stage: str, error: str) -> DeadLetter:
        return DeadLetter.make(stage=stage, error=error, value=rec.value, key=rec.key, source=rec.position)

    data = json_object(rec.value, "empty message (null value); deletes must be explicit op=delete events")
    if isinstance(data, str):
        return dead("parse", data)
    try:
        change = DocumentChange.model_validate(data)
    except ValidationError as exc:
        return dead("validate", describe_validation(exc))
    return change


def _ms(dt: datetime | None) -> int:
    if dt is None:
        return 0
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


class IngestProcessor:
    """Stateless apart from its lazily built clients; one per worker."""

    def __init__(
        self,
        settings: Settings,
        store: LanceStore,
        embedder: Embedder,
        on_applied: Callable[[Sequence[RawRecord]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.on_applied = on_applied

    # -- per-record checks ------------------------------------------------------------------
    def _check(self, ch: DocumentChange) -> str | None:
        if ch.op == "upsert":
            if not ch.text.strip():
                return "empty text: an upsert needs non-blank text (send op=delete to remove a document)"
            if len(ch.text) > self.settings.max_doc_chars:
                return f"text too large: {len(ch.text)} characters > STREAMRAG_MAX_DOC_CHARS={self.settings.max_doc_chars}"
        return None

    def _chunks(self, ch: DocumentChange) -> list[Chunk]:
        return chunk_text(
            ch.text,
            size=self.settings.chunk_size,
            overlap=self.settings.chunk_overlap,
            tokenize=self.embedder.token_spans,
        )

    # -- the batch --------------------------------------------------------------------------
    def process_batch(self, records: Sequence[RawRecord]) -> list[Output]:
        out: list[Output] = []
        latest: dict[str, tuple[DocumentChange, RawRecord]] = {}
        for rec in records:
            try:
                parsed = parse_change(rec)
                if isinstance(parsed, DeadLetter):
                    out.append(parsed)
                    continue
                problem = self._check(parsed)
                if problem:
                    out.append(self._dead(rec, "validate", problem))
                    continue
                k = doc_key(parsed.tenant, parsed.doc_id)
                prev = latest.get(k)
                if prev is None or parsed.version >= prev[0].version:
                    if prev is not None and prev[0].version < parsed.version:
                        out.append(self._event(prev[0], "stale"))
                    latest[k] = (parsed, rec)
                else:
                    out.append(self._event(parsed, "stale"))
            except Exception as exc:  # never let one record stop the flow
                log.exception("unexpected error parsing a record")
                out.append(self._dead(rec, "parse", f"{type(exc).__name__}: {exc}"))
        if latest:
            out.extend(self._apply(latest))
        if self.on_applied is not None:
            try:
                self.on_applied(records)
            except Exception:
                log.warning("progress callback failed", exc_info=True)
        return out

    def _apply(self, latest: dict[str, tuple[DocumentChange, RawRecord]]) -> list[Output]:
        out: list[Output] = []
        try:
            states = self.store.doc_states(latest.keys())
        except Exception as exc:
            log.exception("reading document state failed")
            return [self._dead(rec, "store", f"reading document state failed: {exc}") for _, rec in latest.values()]
        todo: list[tuple[str, DocumentChange, RawRecord, str]] = []
        for k, (ch, rec) in latest.items():
            h = content_hash(ch.title, ch.text, dict(ch.metadata), ch.acl) if ch.op == "upsert" else ""
            st = states.get(k)
            verdict = self._verdict(ch, st, h)
            if verdict is not None:
                out.append(self._event(ch, verdict, content_hash=st.content_hash if st else ""))
            else:
                todo.append((k, ch, rec, h))
        if not todo:
            return out
        # chunk
        planned: list[tuple[str, DocumentChange, RawRecord, str, list[Chunk]]] = []
        for k, ch, rec, h in todo:
            try:
                chunks = self._chunks(ch) if ch.op == "upsert" else []
                if ch.op == "upsert" and not chunks:
                    out.append(self._dead(rec, "chunk", "text has no tokens to index"))
                    continue
                planned.append((k, ch, rec, h, chunks))
            except Exception as exc:
                out.append(self._dead(rec, "chunk", f"{type(exc).__name__}: {exc}"))
        # embed, all documents' chunks together
        texts = [self._embed_text(ch, c) for _, ch, _, _, chunks in planned for c in chunks]
        try:
            vectors = self.embedder.embed(texts) if texts else None
        except Exception as exc:
            log.exception("embedding failed")
            return out + [self._dead(rec, "embed", f"{type(exc).__name__}: {exc}") for _, _, rec, _, _ in planned]
        writes: list[tuple[DocWrite, DocumentChange, RawRecord, str]] = []
        i = 0
        now_ms = int(time.time() * 1000)
        for k, ch, rec, h, chunks in planned:
            vecs: Any = vectors[i : i + len(chunks)] if vectors is not None else []
            i += len(chunks)
            writes.append((self._write(k, ch, h, chunks, vecs, now_ms), ch, rec, h))
        out.extend(self._store(writes))
        return out

    @staticmethod
    def _embed_text(ch: DocumentChange, c: Chunk) -> str:
        return f"{ch.title}\n{c.text}" if ch.title and c.chunk_no == 0 else c.text

    @staticmethod
    def _verdict(ch: DocumentChange, st: DocState | None, h: str) -> str | None:
        """None: apply it. Otherwise the status of a change that need not be applied."""
        if st is None:
            return "unchanged" if ch.op == "delete" else None
        if ch.version < st.version:
            return "stale"
        if ch.version == st.version:
            if ch.op == "delete":
                return "unchanged" if st.deleted else None
            if st.deleted:
                return "stale"  # a delete at the same version wins
            return "unchanged" if st.content_hash == h else "stale"
        return None

    def _write(self, k: str, ch: DocumentChange, h: str, chunks: list[Chunk], vecs: Any, now_ms: int) -> DocWrite:
        upd = _ms(ch.updated_at)
        acl = acl_tokens(ch.acl)
        meta = meta_tokens(dict(ch.metadata))
        rows = [
            {
                "id": chunk_id(ch.tenant, ch.doc_id, c.chunk_no),
                "doc_key": k,
                "tenant": ch.tenant,
                "doc_id": ch.doc_id,
                "chunk_no": c.chunk_no,
                "version": ch.version,
                "content_hash": h,
                "title": ch.title,
                "text": c.text,
                "vector": vecs[j].tolist(),
                "acl": acl,
                "meta": meta,
                "updated_ms": upd,
            }
            for j, c in enumerate(chunks)
        ]
        doc_row = {
            "doc_key": k,
            "tenant": ch.tenant,
            "doc_id": ch.doc_id,
            "version": ch.version,
            "deleted": ch.op == "delete",
            "content_hash": h,
            "title": ch.title,
            "chunk_count": len(rows),
            "metadata_json": json.dumps(ch.metadata, sort_keys=True, default=str),
            "updated_ms": upd,
            "indexed_ms": now_ms,
        }
        return DocWrite(k, doc_row, rows)

    def _store(self, writes: list[tuple[DocWrite, DocumentChange, RawRecord, str]]) -> list[Output]:
        dim = self.embedder.dim
        try:
            self.store.apply([w for w, *_ in writes], dim)
        except Exception as exc:
            return self._store_each(writes, exc)
        self.store.maintain()
        return [self._applied(ch, w, h) for w, ch, _, h in writes]

    def _store_each(self, writes: list[tuple[DocWrite, DocumentChange, RawRecord, str]], exc: Exception) -> list[Output]:
        if len(writes) == 1:
            _w, ch, rec, _ = writes[0]
            log.warning("store write failed for %s: %s", ch.key, exc)
            return [self._dead(rec, "upsert", f"{type(exc).__name__}: {exc}")]
        log.warning("batch write failed (%s); retrying document by document", exc)
        out: list[Output] = []
        for item in writes:
            out.extend(self._store([item]))
        return out


    def _applied(self, ch: DocumentChange, w: DocWrite, h: str) -> IndexEvent:
        status = "deleted" if ch.op == "delete" else "indexed"
        return IndexEvent(
            tenant=ch.tenant, doc_id=ch.doc_id, version=ch.version, op=ch.op,
            status=status, chunk_count=len(w.chunk_rows), content_hash=h,
        )

    @staticmethod
    def _event(ch: DocumentChange, status: str, content_hash: str = "") -> IndexEvent:
        return IndexEvent(
            tenant=ch.tenant, doc_id=ch.doc_id, version=ch.version, op=ch.op,
            status=status, content_hash=content_hash,  # type: ignore[arg-type]
        )

    @staticmethod
    def _dead(rec: RawRecord, stage: str, error: str) -> DeadLetter:
        return DeadLetter.make(stage=stage, error=error, value=rec.value, key=rec.key, source=rec.position)
