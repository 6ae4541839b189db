"""``streamrag publish`` reads gzipped JSONL (as ``eval`` does) and gives lines without a version one."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import streamrag.tools.publish as publish
from streamrag.cli import app
from streamrag.connectors.files import records_from_paths
from streamrag.core.errors import StreamragError


class SentRecords:
    """Stands in for the Kafka producer: keeps what would be sent."""

    sent: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, s: Any) -> None:
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
