"""The index on an S3 object store (SeaweedFS started by scripts/s3-up, stopped after): writes and searches,
the index registry, maintenance, two processes' writers committing to one table at once, and server-side
encryption of every object of the index."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamrag.connectors.lancedb_connect import storage_options, use_object_store
from streamrag.connectors.lancedb_index_registry import LanceIndexRegistry
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.config import EncryptionConfig
from streamrag.core.index_versions import new_manifest
from streamrag.core.scope import Scope
from streamrag.core.settings import Settings
from tests.builders import DIM, doc_writes
from tests.net import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """scripts/s3-up on a port of its own; its `export` lines set in os.environ (LanceDB reads them) until the end."""
    d = tmp_path_factory.mktemp("s3")
    port = free_port()
    while port + 10004 > 65535:  # s3-up uses the next four ports and each + 10000
        port = free_port()
    env = {**os.environ, "STREAMRAG_S3_PORT": str(port), "STREAMRAG_S3_DIR": str(d), "STREAMRAG_S3_BUCKET": "itest"}
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(k, None)
    up = subprocess.run(["bash", "scripts/s3-up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    try:
        assert up.returncode == 0, up.stderr
        assert "conditional PUTs ok" in up.stderr
        exports = dict(line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines())
        assert exports["STREAMRAG_LANCEDB_URI"] == "s3://itest/index"
        assert exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
        saved = {k: os.environ.get(k) for k in exports}
        os.environ.update(exports)
        try:
            yield exports
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        subprocess.run(["bash", "scripts/s3-down"], cwd=ROOT, env=env, capture_output=True, timeout=60)


def test_the_index_lives_on_the_object_store(s3: dict[str, str]) -> None:
    uri = s3["STREAMRAG_LANCEDB_URI"] + "/store"
    store = LanceStore(uri, read_consistency_s=0, ann_index_min_rows=10**9)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (4, DIM)).astype(np.float32)
    writes = doc_writes(rng, centres, 0, 12, tenants=2)
    store.apply(writes, DIM)
    store.maintain(force=True)  # scalar indexes, FTS, optimize: on S3
    assert store.maintenance_failures == 0
    target = writes[0].chunk_rows[0]
    hits = store.vector_search(target["vector"], Scope.of("t0", ["*"]), 3)
    assert hits[0].id == target["id"]
    assert store.text_search(target["text"].split()[0], Scope.of("t0", ["*"]), 3)
    # another process (a fresh connection) sees the same rows
    assert len(LanceStore(uri).chunk_rows()) == sum(len(w.chunk_rows) for w in writes)


def test_the_registry_on_the_object_store(s3: dict[str, str]) -> None:
    uri = s3["STREAMRAG_LANCEDB_URI"] + "/registry"
    reg = LanceIndexRegistry(uri)
    m = new_manifest("v2", Settings(_env_file=None))  # type: ignore[call-arg]
    reg.register(m)
    reg.activate("v2", "test")
    other = LanceIndexRegistry(uri)
    assert other.active() == "v2" and "v2" in other.manifests()


def test_two_writers_commit_to_one_table_at_once_and_lose_nothing(s3: dict[str, str]) -> None:
    # concurrent commits on S3 are safe only with atomic conditional PUTs (checked by s3-up): one writer per
    # document, several per table
    uri = s3["STREAMRAG_LANCEDB_URI"] + "/concurrent"
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1, (4, DIM)).astype(np.float32)
    first = doc_writes(rng, centres, 0, 1, tenants=1)
    LanceStore(uri).apply(first, DIM)  # the tables exist before the race
    parts = [doc_writes(rng, centres, 1 + 40 * w + 4 * b, 4, tenants=1) for w in range(2) for b in range(10)]
    errors: list[BaseException] = []

    def write(batches: list) -> None:
        store = LanceStore(uri)
        try:
            for b in batches:
                store.apply(b, DIM)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(parts[w * 10:(w + 1) * 10],)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not errors, errors
    ids = [r["id"] for r in LanceStore(uri).chunk_rows()]
    expected = len(first[0].chunk_rows) + sum(len(w.chunk_rows) for b in parts for w in b)
    assert len(ids) == len(set(ids)) == expected


def _objects(filer: str, path: str) -> list[dict[str, Any]]:
    """Every object under ``path`` with its metadata, from the SeaweedFS filer (the S3 server's own store)."""
    got = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{filer}{path}?limit=10000", headers={"Accept": "application/json"}), timeout=10).read())
    out: list[dict[str, Any]] = []
    for e in got.get("Entries") or []:
        if e["Mode"] & (1 << 31):  # a folder
            out.extend(_objects(filer, e["FullPath"] + "/"))
        else:
            out.append(json.loads(urllib.request.urlopen(f"{filer}{e['FullPath']}?metadata=true", timeout=10).read()))
    return out


def test_the_index_is_written_with_server_side_encryption(s3: dict[str, str]) -> None:
    """STREAMRAG_ENCRYPTION_S3_SSE=AES256 reaches every object of the index (data, manifests, transactions,
    indexes): the server keeps each encrypted (SSE-S3) and says so in its metadata; without it, none is."""
    filer = f"http://127.0.0.1:{int(s3['AWS_ENDPOINT_URL'].rsplit(':', 1)[1]) + 3}"
    rng = np.random.default_rng(2)
    centres = rng.normal(0, 1, (4, DIM)).astype(np.float32)
    writes = doc_writes(rng, centres, 0, 4, tenants=1)
    try:
        use_object_store(EncryptionConfig(s3_sse="AES256"))
        assert storage_options(s3["STREAMRAG_LANCEDB_URI"]) == {"aws_server_side_encryption": "AES256"}
        assert storage_options("/a/local/folder") == {}
        store = LanceStore(s3["STREAMRAG_LANCEDB_URI"] + "/sse", read_consistency_s=0, ann_index_min_rows=10**9)
        store.apply(writes, DIM)
        assert len(store.chunk_rows()) == sum(len(w.chunk_rows) for w in writes)  # read back through the server
    finally:
        use_object_store(EncryptionConfig())
    LanceStore(s3["STREAMRAG_LANCEDB_URI"] + "/plain", read_consistency_s=0, ann_index_min_rows=10**9).apply(writes, DIM)
    sealed = _objects(filer, "/buckets/itest/index/sse/")
    assert len(sealed) >= 4
    sse = {base64.b64decode(o.get("Extended", {}).get("X-Amz-Server-Side-Encryption", "")) for o in sealed}
    assert sse == {b"AES256"}, [o["FullPath"] for o in sealed if "X-Amz-Server-Side-Encryption" not in o.get("Extended", {})]
    plain = _objects(filer, "/buckets/itest/index/plain/")
    assert plain and not any("X-Amz-Server-Side-Encryption" in (o.get("Extended") or {}) for o in plain)
