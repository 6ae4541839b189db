"""The ingest stages, each a function of a batch, in the order of ``INGEST_STAGES``: parse -> extract ->
redact -> newest per document -> stale check -> chunk -> embed -> write. The ingest flow runs each as a named
bytewax step; ``run_stages`` runs them in the same order in-process.

Items are ``Pending`` (still to do) or ``Finished`` (an index event or a dead letter); a stage
passes finished items through untouched. A record that fails for good in a stage becomes a dead
letter alone (the batch is split around it); temporary failures are retried (core.retry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from streamrag.core import telemetry
from streamrag.core.chunking import chunk_blocks, chunk_text
from streamrag.core.config import IndexConfig
from streamrag.core.drift import DriftMonitor
from streamrag.core.extraction import (
    Block,
    DocumentExtraction,
    ExtractionFailed,
    Extractor,
    fallback_title,
    join_blocks,
    needs_extraction,
)
from streamrag.core.generation.injection import flags as injection_flags
from streamrag.core.ingest.changes import (
    Finished,
    Item,
    Output,
    Pending,
    check_change,
    doc_write,
    embed_text,
    embedded_text,
    event,
    parse_change,
    verdict,
)
from streamrag.core.ingest.history import HistoryWriter, history_row
from streamrag.core.json_limits import JsonLimits
from streamrag.core.pii import TenantRedactors
from streamrag.core.ports import Embedder, IndexWriter, VectorSource
from streamrag.core.records import RawRecord
from streamrag.core.retry import RetryPolicy, run_isolating
from streamrag.core.security import chunk_id, content_hash, doc_key
from streamrag.core.settings import Settings
from streamrag.schemas.models import DeadLetter, DocumentChange
from streamrag.schemas.vocabulary import INGEST_STAGES, IngestStage

log = logging.getLogger(__name__)


def _block_strings(blocks: Sequence[Block]) -> list[str]:
    """Every distinct text of the blocks (their own, their headings, table headers), in order."""
    seen: dict[str, None] = {}
    for b in blocks:
        for t in (b.text, b.header, *b.section):
            if t:
                seen.setdefault(t)
    return list(seen)


def _with_strings(blocks: Sequence[Block], new: Mapping[str, str]) -> tuple[Block, ...]:
    return tuple(replace(b, text=new.get(b.text, b.text), header=new.get(b.header, b.header),
                         section=tuple(new.get(t, t) for t in b.section)) for b in blocks)


def _split(items: Sequence[Item]) -> tuple[list[Pending], list[Item]]:
    todo = [i for i in items if isinstance(i, Pending)]
    done: list[Item] = [i for i in items if isinstance(i, Finished)]
    return todo, done


class IngestStages:
    def __init__(
        self,
        store: IndexWriter,
        embedder: Embedder,
        *,
        chunk_size: int,
        chunk_overlap: int,
        max_doc_chars: int,
        policy: RetryPolicy | None = None,
        redactors: TenantRedactors | None = None,
        drift: DriftMonitor | None = None,
        reuse: Sequence[VectorSource] = (),
        limits: JsonLimits = JsonLimits(),
        extraction: DocumentExtraction | None = None,
        history: HistoryWriter | None = None,
    ) -> None:
        self.history = history  # every applied version kept (core.ingest.history); None: none
        self.limits = limits
        # files (PDF, DOCX, HTML, Markdown) -> text and structure; the library-backed extractors come from the
        # flows (streamrag.connectors); without them only Markdown and plain text are read
        self.extraction = extraction or DocumentExtraction({}, max_bytes=IndexConfig.model_fields["max_doc_bytes"].default)
        self.extracted_pages = 0
        self.reuse = list(reuse)
        self.encoded_chunks = 0
        self.reused_chunks = 0
        self.drift = drift
        self.redactors = redactors
        self._pii_seen: dict[str, int] = {}
        self.store = store
        self.embedder = embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.max_doc_chars = max_doc_chars
        self.policy = policy or RetryPolicy()

    @classmethod
    def from_settings(
        cls, s: Settings, store: IndexWriter, embedder: Embedder, reuse: Sequence[VectorSource] = (),
        extractors: Mapping[str, Extractor] | None = None, history: HistoryWriter | None = None,
    ) -> IngestStages:
        """``extractors``: content type -> extractor (the flows pass the connectors' PDF, DOCX and HTML ones)."""
        redactors = TenantRedactors(s.pii.redaction, s.pii.tenants) if s.pii.redaction or s.pii.tenants else None
        return cls(store, embedder, chunk_size=s.chunk.size, chunk_overlap=s.chunk.overlap,
                   max_doc_chars=s.index.max_doc_chars, policy=RetryPolicy(max_s=s.worker.retry_max_s), redactors=redactors,
                   drift=DriftMonitor(), reuse=reuse, limits=s.json_limits,
                   extraction=DocumentExtraction(extractors or {}, max_bytes=s.index.max_doc_bytes,
                                                 max_uncompressed=s.index.max_uncompressed_bytes,
                                                 max_entries=s.index.max_archive_entries,
                                                 parallel=s.index.extract_processes
                                                 if s.index.extract_sandbox == "process" else 1), history=history)

    # -- the stages, in order -----------------------------------------------------------------
    def parse(self, records: Sequence[RawRecord]) -> list[Item]:
        out: list[Item] = []
        for rec in records:
            parsed = parse_change(rec, self.limits)
            if isinstance(parsed, DeadLetter):
                out.append(Finished(rec, parsed))
            elif (problem := check_change(parsed, self.max_doc_chars)) is not None:
                out.append(Finished(rec, rec.dead("validate", "invalid_record", problem)))
            else:
                out.append(Pending(rec, parsed, doc_key(parsed.tenant, parsed.doc_id)))
        return out

    def extract(self, items: Sequence[Item]) -> list[Item]:
        """A document's file (or structured text) -> its text, title and blocks (pages, headings, table rows).
        A file that cannot be read (corrupt, encrypted, empty, too large, of an unknown type) is a dead letter
        alone, with one clear reason (a file past a size, time or memory limit names the limit)."""
        todo, out = _split(items)
        files = [p for p in todo if needs_extraction(p.change)]
        results = dict(zip(map(id, files), self.extraction.many([p.change for p in files]), strict=True))
        for p in todo:
            ch = p.change
            got = results.get(id(p))
            if got is None:
                out.append(p)
                continue
            if isinstance(got, ExtractionFailed):
                log.info("extracting %s failed: %s", ch.key, got)
                out.append(Finished(p.rec, p.rec.dead("extract", "extraction_failed", str(got))))
                continue
            self.extracted_pages += got.pages
            ch = ch.model_copy(update={"text": got.text, "content_b64": "",
                                       "title": ch.title or got.title or fallback_title(ch.doc_id)})
            if (problem := check_change(ch, self.max_doc_chars)) is not None:
                out.append(Finished(p.rec, p.rec.dead("extract", "invalid_record", f"extracted {problem}")))
                continue
            out.append(replace(p, change=ch, blocks=got.blocks))
        return out

    def redact(self, items: Sequence[Item]) -> list[Item]:
        """PII out of title, text, metadata and an extracted document's blocks (their headings too) before
        anything is chunked, embedded or stored."""
        if self.redactors is None:
            return list(items)
        out: list[Item] = []
        for p in items:
            if not isinstance(p, Pending) or p.change.op != "upsert":
                out.append(p)
                continue
            ch = p.change
            strings = {k: v for k, v in ch.metadata.items() if isinstance(v, str)}
            pieces = _block_strings(p.blocks) if p.blocks is not None else []
            before = sum(self.redactors.counts.values())
            red = self.redactors.redact(ch.tenant, [ch.title, ch.text, *strings.values(), *pieces])
            if sum(self.redactors.counts.values()) != before:
                self._publish_pii()
            if red is not None:
                n = 2 + len(strings)
                meta = {**ch.metadata, **dict(zip(strings, red[2:n], strict=True))}
                update: dict[str, Any] = {"title": red[0], "text": red[1], "metadata": meta}
                blocks = p.blocks
                if blocks is not None:
                    blocks = _with_strings(blocks, dict(zip(pieces, red[n:], strict=True)))
                    update["text"] = join_blocks(blocks)
                p = replace(p, change=ch.model_copy(update=update), blocks=blocks)
            out.append(p)
        return out

    def _publish_pii(self) -> None:
        assert self.redactors is not None
        for kind, n in self.redactors.counts.items():
            seen = self._pii_seen.get(kind, 0)
            if n > seen:
                telemetry.PII_REDACTIONS.labels(kind).inc(n - seen)
                self._pii_seen[kind] = n

    def newest(self, items: Sequence[Item]) -> list[Item]:
        """Keep the newest version of each document in the batch; older ones are stale."""
        todo, out = _split(items)
        latest: dict[str, Pending] = {}
        for p in todo:
            prev = latest.get(p.key)
            if prev is None or p.change.version >= prev.change.version:
                if prev is not None:
                    out.append(Finished(prev.rec, event(prev.change, "stale")))
                latest[p.key] = p
            else:
                out.append(Finished(p.rec, event(p.change, "stale")))
        return out + list(latest.values())

    def stale_check(self, items: Sequence[Item]) -> list[Item]:
        """Compare with the index: older or identical versions need no write."""
        todo, out = _split(items)
        for part, states, exc in run_isolating(
            "reading document state", todo, lambda b: self.store.doc_states(p.key for p in b), self.policy
        ):
            if exc is not None or states is None:
                out.extend(Finished(p.rec, p.rec.dead("stale_check", "unavailable", f"reading document state failed: {exc}")) for p in part)
                continue
            for p in part:
                ch = p.change
                st = states.get(p.key)
                p = replace(p, content_hash=content_hash(ch.title, ch.text, dict(ch.metadata), ch.acl)
                            if ch.op == "upsert" else "", existed=st is not None and not st.deleted,
                            prior_chunks=st.chunk_count if st is not None else 0)
                v = verdict(ch, st, p.content_hash)
                if v is None:
                    out.append(p)
                else:
                    out.append(Finished(p.rec, event(ch, v, content_hash=st.content_hash if st else "")))
        return out

    def chunk(self, items: Sequence[Item]) -> list[Item]:
        todo, out = _split(items)
        for p in todo:
            if p.change.op != "upsert":
                out.append(p)
                continue
            try:
                if p.blocks is not None:  # an extracted document: chunks follow its pages, headings and rows
                    chunks = chunk_blocks(p.blocks, size=self.chunk_size, overlap=self.chunk_overlap,
                                          tokenize=self.embedder.token_spans)
                else:
                    chunks = chunk_text(p.change.text, size=self.chunk_size, overlap=self.chunk_overlap,
                                        tokenize=self.embedder.token_spans)
                p = replace(p, chunks=chunks, blocks=None)
            except Exception as exc:  # a tokenizer error is a property of this text alone
                log.warning("chunking %s failed: %s", p.change.key, exc)
                out.append(Finished(p.rec, p.rec.dead("chunk", "internal", f"{type(exc).__name__}: {exc}")))
                continue
            out.append(p if p.chunks else Finished(p.rec, p.rec.dead("chunk", "invalid_record", "text has no tokens to index")))
        return out

    def embed(self, items: Sequence[Item]) -> list[Item]:
        """Every new chunk of the batch in one encoder call; a text that fails is isolated. A chunk whose
        embedded text an index of the same model already holds (same id) reuses its stored vector."""
        todo, out = _split(items)
        upserts = [p for p in todo if p.chunks]
        out.extend(p for p in todo if not p.chunks)
        known = self._reusable(upserts)

        def encode(batch: list[Pending]) -> np.ndarray:
            texts = [embed_text(p.change, c) for p in batch for c in p.chunks if (p.key, c.chunk_no) not in known]
            return self.embedder.embed(texts) if texts else np.zeros((0, self.embedder.dim), np.float32)

        for part, vecs, exc in run_isolating("embedding", upserts, encode, self.policy):
            if exc is not None or vecs is None:
                out.extend(Finished(p.rec, p.rec.dead("embed", "embedding_failed", f"{type(exc).__name__}: {exc}")) for p in part)
                continue
            i = 0
            for p in part:
                rows = []
                for c in p.chunks:
                    v = known.get((p.key, c.chunk_no))
                    if v is None:
                        v = vecs[i]
                        i += 1
                    rows.append(v)
                vectors = np.asarray(rows, dtype=np.float32)
                p = replace(p, vectors=vectors)
                if self.drift is not None:
                    self.drift.observe("document", p.change.tenant, vectors)
                out.append(p)
            reused = sum(len(p.chunks) for p in part) - i
            self.encoded_chunks += i
            self.reused_chunks += reused
            telemetry.EMBEDDINGS.labels("encoded").inc(i)
            telemetry.EMBEDDINGS.labels("reused").inc(reused)
        return out

    def _reusable(self, upserts: Sequence[Pending]) -> dict[tuple[str, int], np.ndarray]:
        """(doc key, chunk number) -> a stored vector of the same embedded text (nothing on a read failure)."""
        own = self.store if isinstance(self.store, VectorSource) else None
        sources: list[tuple[VectorSource, bool]] = [(own, False)] if own is not None else []
        sources += [(r, True) for r in self.reuse]
        if not upserts or not sources:
            return {}
        want = {chunk_id(p.change.tenant, p.change.doc_id, c.chunk_no): (p, c) for p in upserts for c in p.chunks}
        known: dict[tuple[str, int], np.ndarray] = {}
        for source, every_doc in sources:
            # this index holds chunks only of documents it had before (an update); another index may hold any
            if len(known) == len(want):
                break
            missing = {p.key for p, c in want.values() if (p.key, c.chunk_no) not in known and (every_doc or p.existed)}
            if not missing:
                continue
            try:
                stored = source.stored_vectors(sorted(missing))
            except Exception as exc:  # reuse is an optimisation: encode instead
                log.warning("reading stored vectors failed (encoding instead): %s", exc)
                telemetry.STORE_READ_ERRORS.labels("stored_vectors").inc()
                continue
            for cid, st in stored.items():
                pc = want.get(cid)
                if pc is None:
                    continue
                p, c = pc
                if embedded_text(st.title, st.text, st.chunk_no) == embed_text(p.change, c) and st.chunk_no == c.chunk_no:
                    known[(p.key, c.chunk_no)] = np.asarray(st.vector, dtype=np.float32)
        return known

    def write(self, items: Sequence[Item]) -> list[Item]:
        """One atomic write for the batch (each document's chunks replaced); failures isolated."""
        todo, out = _split(items)
        now_ms = int(time.time() * 1000)
        dim = self.embedder.dim

        def apply(batch: list[Pending]) -> None:
            self.store.apply([doc_write(p, now_ms) for p in batch], dim)

        for part, _, exc in run_isolating("index write", todo, apply, self.policy):
            if exc is None:
                self._keep_history(part, now_ms)
            for p in part:
                if exc is not None:
                    out.append(Finished(p.rec, p.rec.dead("write", "write_failed", f"{type(exc).__name__}: {exc}")))
                else:
                    out.append(Finished(p.rec, applied(p.change, p.content_hash, len(p.chunks))))
                    if p.rec.timestamp_ms:  # event time (the record's) -> searchable
                        telemetry.FRESHNESS.observe(max(0.0, time.time() - p.rec.timestamp_ms / 1000))
        return out

    def _keep_history(self, part: Sequence[Pending], now_ms: int) -> None:
        """The applied versions into the history; a failure there loses no index write (logged and counted)."""
        if self.history is None:
            return
        try:
            self.history.record([history_row(p, now_ms) for p in part])
        except Exception as exc:
            log.warning("document history not written for %d change(s): %s", len(part), exc)
            telemetry.STORE_READ_ERRORS.labels("history_write").inc()

    # -- by name, and all of them in-process ---------------------------------------------------------
    def run(self, stage: IngestStage, items: Sequence[Any]) -> list[Item]:
        """One stage by its name (``INGEST_STAGES``: the one list the flow, replay and tests follow)."""
        fn: Callable[[Sequence[Any]], list[Item]] = getattr(self, stage)
        return fn(items)

    def process_batch(self, records: Sequence[RawRecord]) -> list[Output]:
        return run_stages(self, records)


class IngestSteps(Protocol):
    """Something that runs the named ingest stages (``IngestStages``, or ``RoutedStages`` per index version)."""

    def run(self, stage: IngestStage, items: Sequence[Any]) -> list[Item]: ...


def run_stages(stages: IngestSteps, records: Sequence[RawRecord]) -> list[Output]:
    """Every stage in order, in-process: the outputs (index events and dead letters) of ``records``."""
    items: Sequence[Any] = records
    for name in INGEST_STAGES:
        items = stages.run(name, items)
    return [i.output for i in items if isinstance(i, Finished)]


def applied(ch: DocumentChange, h: str, chunk_count: int) -> Output:
    """The index event; an indexed text that addresses a model is flagged (it is neutralised in answers)."""
    marks = injection_flags(f"{ch.title}\n{ch.text}") if ch.op == "upsert" else []
    return event(ch, "deleted" if ch.op == "delete" else "indexed", content_hash=h, chunk_count=chunk_count,
                 flags=marks)
