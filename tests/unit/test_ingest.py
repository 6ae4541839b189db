from typing import Any

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.schemas.models import DeadLetter, IndexEvent
from streamrag.core.ingest.processor import IngestProcessor
from streamrag.core.settings import Settings
from tests.conftest import change, rec
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
        change("d", 1, "x" * (settings.max_doc_chars + 1)),
        b"\xff\xfe",
    ]
    out = run(*bad, change("good", 1, "fine text"))
    dead = [o for o in out if isinstance(o, DeadLetter)]
    assert len(dead) == len(bad)
    assert all(d.error and d.stage in {"parse", "validate"} for d in dead)
    assert [o.doc_id for o in out if isinstance(o, IndexEvent)] == ["good"]


def test_embed_failure_is_a_dead_letter_not_a_crash(settings: Settings, store: LanceStore) -> None:
    p = IngestProcessor(settings, store, HashEmbedder(fail_on="boom"))
    out = p.process_batch([rec(change("d1", 1, "boom goes here")), rec(change("d2", 1, "fine"))])
    assert all(isinstance(o, DeadLetter) and o.stage == "embed" for o in out)
    out = p.process_batch([rec(change("d2", 1, "fine"))])
    assert statuses(out) == ["indexed"]


def test_store_failure_is_a_dead_letter(settings: Settings, store: LanceStore, monkeypatch: Any) -> None:
    p = IngestProcessor(settings, store, HashEmbedder())

    def broken(*a: Any, **k: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "apply", broken)
    out = p.process_batch([rec(change("d1", 1, "text")), rec(change("d2", 1, "text"))])
    assert statuses(out) == ["dead:upsert", "dead:upsert"]


def test_acl_and_metadata_tokens_stored(run: Any, store: LanceStore) -> None:
    run(change("d1", 1, "secret", acl={"users": ["alice"], "roles": []}, metadata={"kind": "memo"}))
    (row,) = rows(store)
    assert row["acl"] != ["*"] and row["meta"]
