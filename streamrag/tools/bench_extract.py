"""``streamrag bench extract``: PDF extraction pages/s, and its share of ingest time (embedded, no Kafka).

PDFs are made here (fpdf2, a [tools] dependency) from SciFact abstracts when the dataset is there (else
synthetic text), a few abstracts a page with an outline entry per document section. Then:
1. extraction alone (the ``extract`` stage's PDF adapter) over every file: pages/s and MB/s;
2. the ingest stages in-process over the same files (real model, a fresh LanceDB), each stage timed:
   extract's share of the whole, beside the same texts ingested as plain text.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from fpdf import FPDF

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.connectors.pdf_extractor import PdfExtractor
from streamrag.core.ingest.changes import Finished
from streamrag.core.ingest.stages import IngestStages
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.flows.components import embedder_for, make_extractors
from streamrag.schemas.vocabulary import INGEST_STAGES
from streamrag.tools.bench_common import Log, load_docs, machine


def _latin1(text: str) -> str:
    """fpdf2's core fonts are Latin-1: other characters become '?' (the text stays as long)."""
    return text.encode("latin-1", "replace").decode("latin-1")


def make_pdf(title: str, pages: list[list[dict[str, str]]]) -> bytes:
    """One page per list of abstracts; each abstract an outline entry (its title) and its text."""
    doc = FPDF()
    doc.set_title(_latin1(title))
    doc.set_font("Helvetica", size=10)
    for page in pages:
        doc.add_page()
        for d in page:
            doc.start_section(_latin1(d["title"][:80] or d["doc_id"]))
            doc.set_font("Helvetica", style="B", size=11)
            doc.multi_cell(0, 6, _latin1(d["title"] or d["doc_id"]), new_x="LMARGIN", new_y="NEXT")
            doc.set_font("Helvetica", size=10)
            doc.multi_cell(0, 5, _latin1(d["text"]), new_x="LMARGIN", new_y="NEXT")
            doc.ln(3)
    return bytes(doc.output())


def _record(tenant: str, doc_id: str, body: dict[str, Any]) -> RawRecord:
    obj = {"op": "upsert", "tenant": tenant, "doc_id": doc_id, "version": 1, **body}
    return RawRecord(value=json.dumps(obj).encode(), key=f"{tenant}/{doc_id}".encode())


def _timed_ingest(stages: IngestStages, records: list[RawRecord], batch: int) -> tuple[dict[str, float], int, int]:
    """Every stage over the records in batches, each stage's seconds added up; (seconds, indexed, dead)."""
    secs: dict[str, float] = dict.fromkeys(INGEST_STAGES, 0.0)
    indexed = dead = 0
    for i in range(0, len(records), batch):
        items: Any = records[i : i + batch]
        for name in INGEST_STAGES:
            t0 = time.perf_counter()
            items = stages.run(name, items)
            secs[name] += time.perf_counter() - t0
        for it in items:
            if isinstance(it, Finished):
                if getattr(it.output, "status", "") == "indexed":
                    indexed += 1
                else:
                    dead += 1
    return secs, indexed, dead


def bench_extract(s: Settings, dataset: Path | None, docs: int, pages: int, per_page: int, work: Path,
                  log: Log) -> dict[str, Any]:
    texts = load_docs(dataset, docs * pages * per_page)
    files: list[tuple[str, bytes, str]] = []  # (doc id, PDF bytes, the same text as plain text)
    t0 = time.perf_counter()
    for i in range(docs):
        mine = texts[i * pages * per_page : (i + 1) * pages * per_page]
        if not mine:
            break
        layout = [mine[p * per_page : (p + 1) * per_page] for p in range(pages)]
        data = make_pdf(f"Bench document {i}", [pg for pg in layout if pg])
        plain = "\n\n".join(f"{d['title']}\n{d['text']}" for d in mine)
        files.append((f"bench-{i}.pdf", data, plain))
    log(f"made {len(files)} PDFs of {pages} pages ({sum(len(f[1]) for f in files) / 1e6:.1f} MB) "
        f"in {time.perf_counter() - t0:.1f} s")

    ext = PdfExtractor()
    ext.extract(files[0][1])  # imports and caches warmed
    n_pages = 0
    t0 = time.perf_counter()
    for _, data, _ in files:
        n_pages += ext.extract(data).pages
    alone_s = time.perf_counter() - t0
    mb = sum(len(f[1]) for f in files) / 1e6
    log(f"extraction alone: {n_pages} pages in {alone_s:.2f} s = {n_pages / alone_s:.1f} pages/s")

    emb = embedder_for(s)
    emb.embed(["warm up"])
    runs: dict[str, Any] = {}
    for kind in ("pdf", "text"):
        store = LanceStore(str(work / f"db-{kind}"), fts_rebuild_every_s=0)
        stages = IngestStages.from_settings(s, store, emb, extractors=make_extractors(s.index))
        if kind == "pdf":
            recs = [_record("bench", d, {"content_b64": base64.b64encode(b).decode(), "content_type": "application/pdf"})
                    for d, b, _ in files]
        else:
            recs = [_record("bench", d, {"title": f"Bench document {i}", "text": t}) for i, (d, _, t) in enumerate(files)]
        t0 = time.perf_counter()
        secs, indexed, dead = _timed_ingest(stages, recs, s.worker.source_batch_size)
        total = time.perf_counter() - t0
        chunks = stages.encoded_chunks + stages.reused_chunks
        runs[kind] = {"seconds": round(total, 2), "stages_s": {k: round(v, 3) for k, v in secs.items()},
                      "indexed": indexed, "dead_letters": dead, "chunks": chunks,
                      "extract_share": round(secs["extract"] / total, 4), "pages_per_s": round(n_pages / total, 2)}
        log(f"ingest as {kind}: {indexed} documents, {chunks} chunks in {total:.1f} s "
            f"(extract {secs['extract']:.2f} s = {100 * secs['extract'] / total:.1f} %)")
    return {
        "machine": machine(s), "dataset": str(dataset) if dataset else "synthetic",
        "docs": len(files), "pages_per_doc": pages, "abstracts_per_page": per_page, "pages": n_pages,
        "pdf_mb": round(mb, 2), "chunk_size": s.chunk.size,
        "extraction": {"seconds": round(alone_s, 3), "pages_per_s": round(n_pages / alone_s, 1),
                       "mb_per_s": round(mb / alone_s, 2)},
        "ingest": runs,
    }
