"""Shared parts of the benchmarks: the machine, documents, per-run settings, worker processes."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamrag.connectors.lancedb_filters import equals
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.chunking import chunk_text
from streamrag.core.ingest.changes import embedded_text
from streamrag.core.settings import Settings, settings_env
from streamrag.flows.components import embedder_for
from streamrag.schemas.vocabulary import WorkerKind
from streamrag.tools.evaluate import load_beir, open_text

Log = Callable[[str], None]


def machine(settings: Settings) -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "gpu": gpu,
            "device": "cuda" if gpu and settings.index.device in ("auto", "cuda") else "cpu",
            "model": settings.index.embedding_model, "python": platform.python_version(), "torch": torch.__version__}


def load_docs(dataset: Path | None, n: int) -> list[dict[str, str]]:
    docs: list[dict[str, str]] = []
    if dataset is not None:
        corpus, _, _ = load_beir(dataset)
        with open_text(corpus) as f:
            for line in f:
                o = json.loads(line)
                docs.append({"doc_id": str(o["_id"]), "title": o.get("title", ""), "text": o.get("text") or "(empty)"})
                if len(docs) >= n:
                    break
        return docs
    rng = np.random.default_rng(0)
    words = ["stream", "index", "vector", "query", "answer", "tenant", "kafka", "lance", "chunk", "embed", "latency", "cache", "model", "token"]
    for i in range(n):
        text = ". ".join(" ".join(rng.choice(words, 12)) for _ in range(14)) + "."
        docs.append({"doc_id": f"syn{i}", "title": f"Synthetic {i}", "text": text})
    return docs


def bench_env(s: Settings, tag: str, db: Path | str, partitions: int) -> tuple[Settings, dict[str, str]]:
    """Settings of a benchmark run (own topics, group and index) and the environment of its workers."""
    update: dict[str, object] = {"lancedb_uri": str(db), "ingest_group": f"bench-{tag}", "kafka_partitions": partitions}
    for t in ("documents", "queries", "answers", "cache", "index_events", "dead_letters", "audit"):
        update[f"topic_{t}"] = f"bench-{tag}.{t}"
    bs = s.model_copy(update=update)
    return bs, settings_env(bs)


def start_workers(kind: WorkerKind, env: dict[str, str], n: int, logdir: Path, extra_env: dict[str, str] | None = None) -> list[subprocess.Popen[bytes]]:
    base = 23000 + (os.getpid() % 1000) * 4
    addrs = ";".join(f"127.0.0.1:{base + i}" for i in range(n))
    procs = []
    for i in range(n):
        args = [sys.executable, "-m", "streamrag.cli", "worker", kind]
        if n > 1:
            args += ["-i", str(i), "-a", addrs]
        log = (logdir / f"{kind}-{i}.log").open("ab")
        procs.append(subprocess.Popen(args, env={**os.environ, **env, **(extra_env or {}), "HF_HUB_OFFLINE": "1"},
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


_STORES: dict[Path | str, LanceStore] = {}


def count_chunks(db: Path | str, tenant: str) -> int:
    store = _STORES.setdefault(db, LanceStore(str(db)))
    t = store.table("chunks")
    if t is None:
        return 0
    return int(t.count_rows(equals("tenant", tenant)))


def raw_encoder_rate(s: Settings, docs: list[dict[str, str]]) -> tuple[int, float, float]:
    """The encoder alone on the chunks the ingest stages would make of ``docs``: (chunks, seconds, chunks/s)."""
    emb = embedder_for(s)
    emb.embed(["warm up"])
    texts = [embedded_text(d["title"], c.text, c.chunk_no) for d in docs
             for c in chunk_text(d["text"], size=s.chunk.size, overlap=s.chunk.overlap, tokenize=emb.token_spans)]
    t0 = time.perf_counter()
    emb.embed(texts)
    el = time.perf_counter() - t0
    return len(texts), el, len(texts) / el
