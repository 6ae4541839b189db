import json
from typing import Any

import pytest

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.errors import TemporaryFailure, TransientError
from streamrag.core.retry import is_transient
from streamrag.core.security import acl_tokens, meta_tokens
from streamrag.core.settings import Settings
from streamrag.schemas.models import Acl, DeadLetter, IndexEvent
from tests.conftest import Indexer, change, rec
from tests.fakes import HashEmbedder

LONG = " ".join(f"Sentence number {i} talks about topic{i}." for i in range(30))


def rows(store: LanceStore) -> list[dict[str, Any]]:
    return sorted(store.chunk_rows(), key=lambda r: r["id"])


def statuses(out: list[Any]) -> list[str]:
    return [o.status if isinstance(o, IndexEvent) else f"dead:{o.stage}" for o in out]


def test_upsert_chunks_and_replay_is_identical(run: Any, store: LanceStore) -> None:
    assert statuses(run(change("d1", 1, LONG), change("d2", 1, "short doc"))) == ["indexed", "indexed"]
    first = rows(store)
    assert len([r for r in first if r["doc_id"] == "d1"]) > 3
    v = store.table("chunks").version
    assert statuses(run(change("d1", 1, LONG), change("d2", 1, "short doc"))) == ["unchanged", "unchanged"]
    assert rows(store) == first
    assert store.table("chunks").version == v  # a replay writes nothing


def test_shrink_removes_stale_chunks_and_delete_removes_all(run: Any, store: LanceStore) -> None:
    run(change("d1", 1, LONG))
    run(change("d1", 2, "now it is short"))
    got = [r for r in rows(store) if r["doc_id"] == "d1"]
    assert len(got) == 1 and got[0]["version"] == 2
    assert statuses(run(change("d1", 3, op="delete"))) == ["deleted"]
    assert rows(store) == []


def test_older_version_after_newer_is_ignored(run: Any, store: LanceStore) -> None:
    run(change("d1", 5, "version five"))
    assert statuses(run(change("d1", 4, "version four"))) == ["stale"]
    assert {r["text"] for r in rows(store)} == {"version five"}
    # and an old upsert after a delete does not resurrect the document
    run(change("d1", 6, op="delete"))
    assert statuses(run(change("d1", 5, "version five"))) == ["stale"]
    assert rows(store) == []


def test_newest_in_one_batch_wins(run: Any, store: LanceStore) -> None:
    out = run(change("d1", 2, "two"), change("d1", 3, "three"), change("d1", 1, "one"))
    assert sorted(statuses(out)) == ["indexed", "stale", "stale"]
    assert {r["text"] for r in rows(store)} == {"three"}


def test_bad_input_goes_to_dead_letters(run: Any, store: LanceStore, settings: Settings) -> None:
    bad = [
        b"{not json",
        b"[1, 2]",
        change("", 1, "x"),
        {"op": "upsert", "doc_id": "x", "version": 1, "text": "no tenant"},
        change("d", -1, "negative"),
        change("d", 1, "   "),
        change("d", 1, "x", op="merge"),
        change("d", 1, "x" * (settings.index.max_doc_chars + 1)),
        b"\xff\xfe",
    ]
    out = run(*bad, change("good", 1, "fine text"))
    dead = [o for o in out if isinstance(o, DeadLetter)]
    assert len(dead) == len(bad)
    assert all(d.error and d.stage in {"parse", "validate"} for d in dead)
    sent = sorted(b if isinstance(b, bytes) else json.dumps(b).encode() for b in bad)
    assert sorted(d.original() for d in dead) == sent  # each carries its own original bytes
    assert [o.doc_id for o in out if isinstance(o, IndexEvent)] == ["good"]


def test_null_optional_fields_are_accepted(run: Any, store: LanceStore) -> None:
    out = run(change("n", 1, "null acl and metadata", acl=None, metadata=None, title=None))
    assert statuses(out) == ["indexed"]


def test_one_poisonous_document_is_dead_lettered_alone(settings: Settings, store: LanceStore) -> None:
    """The embedder fails on one text: the batch is split around it, every other document is indexed."""
    emb = HashEmbedder(fail_on="boom")
    p = Indexer(settings, store, emb)
    docs = [change(f"d{i}", 1, f"fine document number {i}") for i in range(7)]
    docs.insert(3, change("poison", 1, "boom goes here"))
    out = p.process_batch([rec(d, key=d["doc_id"].encode()) for d in docs])
    dead = [o for o in out if isinstance(o, DeadLetter)]
    assert [(d.stage, d.original()) for d in dead] == [("embed", json.dumps(docs[3]).encode())]
    assert sorted(o.doc_id for o in out if isinstance(o, IndexEvent) and o.status == "indexed") == [f"d{i}" for i in range(7)]
    assert {r["doc_id"] for r in rows(store)} == {f"d{i}" for i in range(7)}


def test_a_document_the_store_refuses_is_dead_lettered_alone(settings: Settings, store: LanceStore, monkeypatch: Any) -> None:
    real = store.apply

    def refuse_poison(writes: Any, dim: int) -> None:
        if any(w.doc_row["doc_id"] == "poison" for w in writes):
            raise ValueError("row rejected by the store")
        real(writes, dim)

    monkeypatch.setattr(store, "apply", refuse_poison)
    out = Indexer(settings, store).process_batch([rec(change(d, 1, f"text of {d}")) for d in ("a", "poison", "b", "c")])
    assert sorted(statuses(out)) == ["dead:write", "indexed", "indexed", "indexed"]
    assert {r["doc_id"] for r in rows(store)} == {"a", "b", "c"}


def test_store_failing_three_times_then_recovering_loses_nothing(settings: Settings, store: LanceStore, monkeypatch: Any) -> None:
    real = store.apply
    failures = {"left": 3}

    def flaky(writes: Any, dim: int) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OSError("object store: connection reset")
        real(writes, dim)

    monkeypatch.setattr(store, "apply", flaky)
    out = Indexer(settings, store).process_batch([rec(change(f"d{i}", 1, f"text {i}")) for i in range(5)])
    assert failures["left"] == 0
    assert statuses(out) == ["indexed"] * 5
    assert len({r["doc_id"] for r in rows(store)}) == 5


def test_a_store_that_stays_down_stops_the_worker_instead_of_dead_lettering(settings: Settings, store: LanceStore, monkeypatch: Any) -> None:
    def down(*a: Any, **k: Any) -> None:
        raise OSError("disk unavailable")

    monkeypatch.setattr(store, "apply", down)
    p = Indexer(settings.model_copy(update={"retry_max_s": 0.3}), store)
    with pytest.raises(TemporaryFailure):
        p.process_batch([rec(change("d1", 1, "text")), rec(change("d2", 1, "text"))])


def test_transient_errors_are_told_apart_by_type_not_message() -> None:
    assert is_transient(OSError("io")) and is_transient(TimeoutError()) and is_transient(TransientError("conflict"))
    assert not is_transient(ValueError("bad row")) and not is_transient(RuntimeError("embedder exploded"))
    assert not is_transient(RuntimeError("Commit conflict"))  # only an adapter reads its library's messages


def test_the_store_adapter_types_lance_errors() -> None:
    from streamrag.connectors.lancedb_errors import lance_errors

    with pytest.raises(TransientError), lance_errors("index write"):
        raise RuntimeError("lance error: Commit conflict for version 7: retry")
    with pytest.raises(TransientError), lance_errors("index write"):
        raise OSError("object store: connection reset")
    with pytest.raises(ValueError), lance_errors("index write"):
        raise ValueError("field vector: expected 384 dimensions")
    # the object store stopped (as the test bed saw it, less the retry settings that happened to say "timeout")
    with pytest.raises(TransientError), lance_errors("index write"):
        raise RuntimeError("lance error: LanceError(IO): Generic S3 error: Error performing list request: Error "
                           "performing GET http://127.0.0.1:8333/streamrag?list-type=2 in 331ms, after 3 retries - "
                           "HTTP error: error sending request")


def test_the_encoder_adapter_types_out_of_memory() -> None:
    import torch

    from streamrag.connectors.sentence_embedder import _out_of_memory

    assert _out_of_memory(torch.OutOfMemoryError("CUDA out of memory")) and _out_of_memory(
        RuntimeError("MPS backend out of memory"))
    assert not _out_of_memory(RuntimeError("index out of range"))


def test_acl_and_metadata_tokens_stored(run: Any, store: LanceStore) -> None:
    run(change("d1", 1, "secret", acl={"users": ["alice"], "roles": []}, metadata={"kind": "memo"}))
    (row,) = rows(store)
    # stored as keyed hashes, never the names: a leaked row tells nobody who may read it
    assert row["acl"] == acl_tokens(Acl(users=["alice"])) and len(row["acl"]) == 1
    assert row["acl"][0].startswith("u:") and "alice" not in row["acl"][0]
    assert row["meta"] == meta_tokens({"kind": "memo"}) and "memo" not in row["meta"][0]


def test_a_write_interrupted_between_its_commits_is_repaired_by_the_retry(settings: Settings, store: LanceStore, monkeypatch: Any) -> None:
    import lancedb.table

    Indexer(settings, store).process_batch([rec(change("d1", 1, LONG))])
    real = lancedb.table.LanceTable.delete
    failures = {"left": 1}

    def delete_fails_once(self: Any, where: str) -> Any:
        if failures["left"]:  # the chunks are upserted, the stale tail and the doc row not yet written
            failures["left"] -= 1
            raise OSError("object store: connection reset")
        return real(self, where)

    monkeypatch.setattr(lancedb.table.LanceTable, "delete", delete_fails_once)
    out = Indexer(settings, store).process_batch([rec(change("d1", 2, "now it is short"))])
    assert failures["left"] == 0 and statuses(out) == ["indexed"]
    got = [r for r in rows(store) if r["doc_id"] == "d1"]
    assert [(r["chunk_no"], r["version"]) for r in got] == [(0, 2)]  # the old tail is gone after the retry
