"""Per-record ingest logic: parse and check a change, decide whether it needs applying, build its rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import ValidationError

from streamrag.core.analysis import bm25_terms
from streamrag.core.chunking import Chunk
from streamrag.core.extraction import Block, section_label
from streamrag.core.json_limits import JsonLimits, Reason, describe_validation, read_object
from streamrag.core.ports import DocState, DocWrite
from streamrag.core.records import RawRecord
from streamrag.core.security import acl_tokens, chunk_id, meta_tokens
from streamrag.schemas.models import DeadLetter, DocumentChange, IndexEvent

Output = IndexEvent | DeadLetter


@dataclass(frozen=True, slots=True)
class Pending:
    """A record on its way through the ingest stages, with what each stage added (each stage returns a new one)."""

    rec: RawRecord
    change: DocumentChange
    key: str
    content_hash: str = ""
    existed: bool = False  # the index holds an older version (its chunks may be reused)
    prior_chunks: int | None = None  # chunks the index holds for it (read by the stale check)
    index: str = ""  # the index version this record is written to (fixed when it is parsed)
    chunks: list[Chunk] = field(default_factory=list)
    vectors: np.ndarray | None = None
    # the extracted document's structure (None: plain text, chunked as it is)
    blocks: tuple[Block, ...] | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """A record that needs nothing more: its index event or dead letter."""

    rec: RawRecord
    output: Output


Item = Pending | Finished


def parse_change(rec: RawRecord, limits: JsonLimits = JsonLimits()) -> DocumentChange | DeadLetter:
    """Bytes -> DocumentChange, or a dead letter saying exactly what is wrong."""
    data = read_object(rec.value, limits, "empty message (null value); deletes must be explicit op=delete events")
    if isinstance(data, Reason):
        return rec.dead("parse", "invalid_record", data)
    try:
        return DocumentChange.model_validate(data)
    except ValidationError as exc:
        return rec.dead("validate", "invalid_record", describe_validation(exc))


def check_change(ch: DocumentChange, max_doc_chars: int) -> str | None:
    """What is wrong with a well-formed change that cannot be indexed, or None."""
    if ch.op == "upsert" and not ch.content_b64:  # a file's text is checked once it is extracted
        if not ch.text.strip():
            return "empty text: an upsert needs non-blank text (send op=delete to remove a document)"
        if len(ch.text) > max_doc_chars:
            return f"text too large: {len(ch.text)} characters > STREAMRAG_MAX_DOC_CHARS={max_doc_chars}"
    return None


def verdict(ch: DocumentChange, st: DocState | None, h: str) -> str | None:
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


def event(ch: DocumentChange, status: str, content_hash: str = "", chunk_count: int = 0,
          flags: list[str] | None = None) -> IndexEvent:
    return IndexEvent.model_validate({
        "tenant": ch.tenant, "doc_id": ch.doc_id, "version": ch.version, "op": ch.op,
        "status": status, "content_hash": content_hash, "chunk_count": chunk_count, "flags": flags or [],
    })


def embed_text(ch: DocumentChange, c: Chunk) -> str:
    """The text that is embedded for a chunk: the title leads the first chunk."""
    return embedded_text(ch.title, c.text, c.chunk_no)


def embedded_text(title: str, text: str, chunk_no: int) -> str:
    return f"{title}\n{text}" if title and chunk_no == 0 else text


def _ms(dt: datetime | None) -> int:
    return 0 if dt is None else int(dt.timestamp() * 1000)  # validated times are zone-aware (schemas.as_utc)


def doc_write(p: Pending, now_ms: int) -> DocWrite:
    """The rows that replace a document in the index (no chunk rows for a delete)."""
    ch = p.change
    upd = _ms(ch.updated_at)
    acl = acl_tokens(ch.acl)
    meta = meta_tokens(dict(ch.metadata))
    vecs: Any = p.vectors if p.vectors is not None else []
    title_terms = bm25_terms(ch.title)
    rows = [
        {
            "id": chunk_id(ch.tenant, ch.doc_id, c.chunk_no), "doc_key": p.key, "tenant": ch.tenant,
            "doc_id": ch.doc_id, "chunk_no": c.chunk_no, "version": ch.version, "content_hash": p.content_hash,
            "title": ch.title, "text": c.text, "vector": vecs[j].tolist(), "acl": acl, "meta": meta,
            "updated_ms": upd, "page": c.page, "section": section_label(c.section) or None,
            "terms": bm25_terms(c.text), "title_terms": title_terms,
        }
        for j, c in enumerate(p.chunks)
    ]
    doc_row = {
        "doc_key": p.key, "tenant": ch.tenant, "doc_id": ch.doc_id, "version": ch.version,
        "deleted": ch.op == "delete", "content_hash": p.content_hash, "title": ch.title,
        "chunk_count": len(rows), "metadata_json": json.dumps(ch.metadata, sort_keys=True, default=str),
        "updated_ms": upd, "indexed_ms": now_ms,
    }
    return DocWrite(p.key, doc_row, rows, p.prior_chunks)
