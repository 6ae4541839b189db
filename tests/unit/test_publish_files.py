"""``streamrag publish`` reads gzipped JSONL (as ``eval`` does) and gives lines without a version one; it
refuses by name a line naming another tenant than ``--tenant``, a link out of the folder, a line over the
message limit and a .jsonl.gz past its inflated-size cap (#34 finding 9)."""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import streamrag.tools.publish as publish
from streamrag.cli import app
from streamrag.connectors.files import records_from_paths
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.errors import StreamragError


class SentRecords:
    """Stands in for the Kafka producer: keeps what would be sent."""

    sent: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, k: Any, w: Any) -> None:
        SentRecords.sent = []

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        SentRecords.sent.append((topic, json.loads(value)))

    def flush(self) -> None:
        pass


LINES = [
    {"doc_id": "d1", "title": "One", "text": "the first abstract"},  # no version, no tenant, no op
    {"doc_id": "d2", "text": "the second abstract", "version": 7},
    {"doc_id": "d1", "text": "the first abstract, edited"},  # a later line about d1
]


def write_corpus(path: Path) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(x) for x in LINES) + "\n")
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))


def test_publish_reads_gzipped_jsonl_and_versions_lines_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMRAG_LANCEDB_URI", str(tmp_path / "db"))
    monkeypatch.setattr(publish, "check_reachable", lambda s: None)
    monkeypatch.setattr(publish, "JsonProducer", SentRecords)
    corpus = tmp_path / "corpus.jsonl.gz"
    write_corpus(corpus)
    r = CliRunner().invoke(app, ["publish", str(corpus), "--tenant", "acme"])
    assert r.exit_code == 0, r.output
    got = [v for _t, v in SentRecords.sent]
    assert [(v["doc_id"], v["tenant"], v["op"]) for v in got] == [("d1", "acme", "upsert"), ("d2", "acme", "upsert"),
                                                                   ("d1", "acme", "upsert")]
    mtime_us = 1_700_000_000_000_000
    assert [v["version"] for v in got] == [mtime_us + 1, 7, mtime_us + 3]  # the later line wins


def test_a_folder_is_walked_for_gzipped_jsonl(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus.jsonl.gz")
    (tmp_path / "other.gz").write_bytes(gzip.compress(b"not a corpus"))  # not walked for
    got = [json.loads(r.value or b"") for r in records_from_paths([tmp_path], "acme")]
    assert [g["doc_id"] for g in got] == ["d1", "d2", "d1"] and all(g["version"] for g in got)


def test_a_broken_gzip_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl.gz").write_bytes(b'{"doc_id": "plain, not gzipped"}\n')
    with pytest.raises(StreamragError, match=r"corpus\.jsonl\.gz: unreadable"):
        list(records_from_paths([tmp_path / "corpus.jsonl.gz"], "acme"))


# -- #34 finding 9: what --tenant and a folder allow ---------------------------------------------------------
@pytest.fixture
def sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The changes `streamrag publish` would send (the producer stands in for Kafka)."""
    monkeypatch.setenv("STREAMRAG_LANCEDB_URI", str(tmp_path / "db"))
    monkeypatch.setattr(publish, "check_reachable", lambda s: None)
    monkeypatch.setattr(publish, "JsonProducer", SentRecords)
    SentRecords.sent = []
    return SentRecords.sent


def published(result: Any) -> list[dict[str, Any]]:
    return [v for _t, v in SentRecords.sent] if "published" in result.stdout else []


def test_publish_refuses_a_line_naming_another_tenant(tmp_path: Path, sent: list[Any]) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(x) for x in [
        {"doc_id": "ours", "text": "an acme document"},
        {"doc_id": "planted", "tenant": "globex", "text": "written into another tenant"},
        {"doc_id": "also-ours", "tenant": "acme", "text": "acme again"},
    ]) + "\n")
    r = CliRunner().invoke(app, ["publish", str(corpus), "--tenant", "acme"])
    assert r.exit_code == 1, r.output
    assert [(v["tenant"], v["doc_id"]) for v in published(r)] == [("acme", "ours"), ("acme", "also-ours")]
    out = " ".join(r.output.split())
    assert f"refused {corpus}:2: the line names tenant 'globex', not --tenant 'acme': not sent" in out


def test_publish_refuses_a_link_out_of_the_folder(tmp_path: Path, sent: list[Any]) -> None:
    outside = tmp_path / "home"
    outside.mkdir()
    (outside / "credentials.txt").write_text("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "policy.txt").write_text("the travel policy")
    (docs / "notes.txt").symlink_to(outside / "credentials.txt")
    (docs / "sub" / "same.txt").symlink_to(docs / "policy.txt")  # a link inside the folder is fine
    r = CliRunner().invoke(app, ["publish", str(docs), "--tenant", "acme"])
    assert r.exit_code == 1, r.output
    assert sorted(v["doc_id"] for v in published(r)) == ["policy.txt", "sub/same.txt"]
    assert not any("AWS_SECRET" in json.dumps(v) for v in sent)
    out = " ".join(r.output.split())
    assert f"refused {docs / 'notes.txt'}: a link to {outside / 'credentials.txt'}, outside {docs}: not read" in out


def test_a_gzip_bomb_is_streamed_with_caps_on_a_line_and_on_the_whole(tmp_path: Path, sent: list[Any]) -> None:
    corpus = tmp_path / "corpus.jsonl.gz"
    blank = b" " * (1 << 20) + b"\n"
    with gzip.open(corpus, "wb") as fh:
        fh.write(json.dumps({"doc_id": "first", "text": "kept"}).encode() + b"\n")
        fh.write(b'{"doc_id": "long", "text": "' + b"x" * (5 << 20) + b'"}\n')  # over the 4 MiB message limit
        fh.write(json.dumps({"doc_id": "third", "text": "kept too"}).encode() + b"\n")
        for _ in range(200):  # 200 MB inflated, ~200 KB on disk
            fh.write(blank)
        fh.write(json.dumps({"doc_id": "past-the-cap", "text": "never read"}).encode() + b"\n")
    assert corpus.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        r = CliRunner().invoke(app, ["publish", str(corpus), "--tenant", "acme"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.exit_code == 1, r.output
    assert [v["doc_id"] for v in published(r)] == ["first", "third"]
    out = " ".join(r.output.split())
    assert f"refused {corpus}:2: a line longer than 4194304 bytes (STREAMRAG_MAX_MESSAGE_BYTES): not read" in out
    assert f"refused {corpus}:" in out and "uncompressed size over 50000000 bytes" in out
    assert peak < 40_000_000, peak  # streamed: never the whole file (or its 5 MiB line) in memory at once


def test_ingest_refuses_the_same_by_name_and_indexes_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRAG_LANCEDB_URI", str(tmp_path / "db"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "credentials.txt").write_text("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policy.txt").write_text("the travel policy pays for second class trains")
    (docs / "notes.txt").symlink_to(tmp_path / "credentials.txt")
    (docs / "corpus.jsonl").write_text(json.dumps({"doc_id": "planted", "tenant": "globex", "text": "into globex"}) + "\n")
    r = CliRunner().invoke(app, ["ingest", str(docs), "--tenant", "acme", "--json"])
    assert r.exit_code == 1, r.output
    got = json.loads(r.stdout)
    assert got["counts"]["indexed"] == 1 and got["counts"]["refused"] == 2
    assert {x["where"] for x in got["refused"]} == {str(docs / "notes.txt"), f"{docs / 'corpus.jsonl'}:1"}
    store = LanceStore(str(tmp_path / "db"), fts_rebuild_every_s=0)
    assert [r["doc_id"] for r in store.chunk_rows("acme")] == ["policy.txt"] and not store.chunk_rows("globex")
