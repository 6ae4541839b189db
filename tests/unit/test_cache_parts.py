"""The semantic cache's parts, each on its own."""

from __future__ import annotations

import time

import numpy as np

from streamrag.core.cache.entry_index import EntryIndex
from streamrag.core.cache.invalidation import InvalidationTracker
from streamrag.core.cache.storage import EntryStorage
from streamrag.core.cache.vector_index import VectorIndex
from streamrag.schemas.models import Answer, CacheEntry, CitedDoc
from tests.fakes import MemoryPayloadStore


def entry(key: str, doc: str = "d", version: int = 1, vec: list[float] | None = None) -> CacheEntry:
    return CacheEntry(tenant="acme", cache_key=key, normalized_text=key, scope="s", options_hash="o",
                      embedding=vec or [1.0, 0.0], answer=Answer(query_id="q", tenant="acme", status="ok"),
                      cites=[CitedDoc(doc_id=doc, version=version)])


def test_vector_index_search_and_remove() -> None:
    m = VectorIndex(4)
    rng = np.random.default_rng(0)
    vs = rng.normal(size=(300, 4)).astype(np.float32)
    vs /= np.linalg.norm(vs, axis=1, keepdims=True)
    for i, v in enumerate(vs):
        m.add(f"k{i}", v)
    assert m.search(vs[7], 0.999)[0][0] == "k7"
    m.remove("k7")
    assert all(k != "k7" for k, _ in m.search(vs[7], 0.0, limit=300))
    assert len(m) == 299 and m.search(vs[299], 0.999)[0][0] == "k299"  # the moved row still answers
    m.remove("k299")  # ... and can itself be removed where it now lives
    assert len(m) == 298 and all(k != "k299" for k, _ in m.search(vs[299], 0.0, limit=300))


def test_tracker_refuses_answers_overtaken_by_an_event() -> None:
    t = InvalidationTracker()
    started = time.time()
    t.note_event("acme", "d", 3)
    assert t.overtaken("acme", [("d", 2)]) and not t.overtaken("acme", [("d", 3)])
    assert t.built_current(started) and not t.built_current(None)


def test_tracker_memory_is_bounded_and_overflow_unverifies() -> None:
    t = InvalidationTracker(seen_max=10)
    before = time.time() - 1
    for i in range(11):
        t.note_event("acme", f"d{i}", 1)
    assert len(t.seen) == 0 and t.lost_at > 0
    assert not t.built_current(before)  # built across the overflow: checked on first hit


def test_tracker_pending_and_confirm() -> None:
    t = InvalidationTracker()
    t.mark("a", verified=False, checkable=True)
    t.mark("b", verified=True, checkable=True)
    assert t.pending == {"a"} and t.take_pending(10) == ["a"] and not t.pending
    t.confirm("a")
    assert t.verified == {"a", "b"}


def test_storage_lru_in_front_of_payloads() -> None:
    p = MemoryPayloadStore()
    s = EntryStorage(p, lru_size=2)
    for k in ("a", "b", "c"):
        s.keep(entry(k))
        s.save(entry(k), 60)
    assert s.cached("a") is None and s.cached("c") is not None  # evicted from the LRU ...
    fetched = s.fetch("acme", "a")
    assert fetched is not None and fetched.cache_key == "a"  # ... but still in the shared store
    p.put("acme", "bad", b"{not an entry", 60)
    assert s.fetch("acme", "bad") is None
    s.delete("acme", ["a", "c"])
    assert s.fetch("acme", "a") is None and s.cached("c") is None


def test_entry_index_citations_and_aliases() -> None:
    ix = EntryIndex(alias_max=2)
    ix.add(entry("e1", doc="d", version=1))
    ix.add(entry("e2", doc="d", version=2, vec=[0.0, 1.0]))
    assert ix.citing_older("acme", "d", 2) == ["e1"]
    assert ix.search("acme", "o", np.array([0.0, 1.0], dtype=np.float32), 0.9)[0][0] == "e2"
    ix.add_alias("x", "e1")
    ix.add_alias("y", "e1")
    ix.add_alias("z", "e2")
    assert list(ix.alias) == ["y", "z"]  # bounded, oldest first out
    ix.remove("e1")
    assert ix.alias_target("y") is None and "e1" not in ix.meta and ix.by_doc[("acme", "d")] == {"e2"}
