"""One writer per index version: a replay into the version live ingest writes (the active one) is refused, a
following replay stops when its version is promoted (that batch unwritten), and with the writer lease a version
being replayed is not switched to, nor is a version being switched to replayed.

One guarded ingest path: a record that breaks a replay step, or killed the replay twice, is dead-lettered alone
(the ingest flow's step guard and a crash ledger) through the ingest worker's sink, flushed before the commit."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from streamrag.connectors.crash_ledger import FileCrashLedger, read_ledger, replay_ledger_path
from streamrag.connectors.lancedb_index_registry import LanceIndexRegistry
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.errors import IndexRefused, ServiceUnavailable
from streamrag.core.index_versions import new_manifest, table_names
from streamrag.core.records import Outgoing, RawRecord
from streamrag.core.settings import Settings
from streamrag.tools import index_admin
from streamrag.tools import replay as replay_mod
from streamrag.tools.replay import replay
from tests.conftest import change, rec
from tests.fakes import HashEmbedder
from tests.lease_contract import FakeLeases

NO_KAFKA = "127.0.0.1:1"  # nothing listens: a replay that gets past the checks stops at Kafka, never at a shared broker


@pytest.fixture
def s(tmp_path: Any) -> Settings:
    return Settings(lancedb_uri=str(tmp_path / "db"), kafka_bootstrap=NO_KAFKA, kafka_timeout_s=1,  # type: ignore[call-arg]
                    chunk_size=20, chunk_overlap=4, retry_max_s=1, state_dir=str(tmp_path / "state"), _env_file=None)


def test_a_replay_into_the_active_version_is_refused_unless_ingest_is_stopped(s: Settings) -> None:
    with pytest.raises(IndexRefused, match=r"'default' is the active version.*--ingest-stopped"):
        replay(s, "default")
    reg = LanceIndexRegistry(s.lancedb_path())
    reg.register(new_manifest("green", s))
    reg.activate("green", "promote")
    with pytest.raises(IndexRefused, match="'green' is the active version"):
        replay(s, "green")
    for name, stopped in (("default", False), ("green", True)):  # past the check: on to Kafka
        with pytest.raises(ServiceUnavailable):
            replay(s, name, ingest_stopped=stopped)


class Reader:
    """The documents topic as a replay reads it: ``per_read`` records per read, committed positions counted
    (and each commit noted in ``log``)."""

    def __init__(self, records: list[RawRecord], per_read: int = 1, log: list[str] | None = None) -> None:
        self.records, self.per_read, self.read_n, self.committed = records, per_read, 0, 0
        self.log = log if log is not None else []

    def read(self, max_records: int, timeout_s: float) -> list[RawRecord]:
        self.read_n += 1
        assert self.read_n <= 10, "the replay went on reading"  # bounded: a replay that never stops fails here
        return self.records[(self.read_n - 1) * self.per_read:self.read_n * self.per_read]

    def commit(self) -> None:
        self.committed = min(len(self.records), self.read_n * self.per_read)
        self.log.append(f"commit {self.committed}")

    def behind(self) -> int:
        return len(self.records) - self.committed

    def close(self) -> None:
        pass


def test_a_following_replay_stops_when_its_version_becomes_active(s: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = Reader([rec(change(f"d{i}", text=f"document number {i} about glaciers"), key=f"acme/d{i}".encode())
                     for i in range(5)])
    monkeypatch.setattr(replay_mod, "check_reachable", lambda s: None)
    monkeypatch.setattr(replay_mod, "TopicReader", lambda *a, **kw: reader)
    monkeypatch.setattr(replay_mod, "embedder_for", lambda s: HashEmbedder())
    reg = LanceIndexRegistry(s.lancedb_path())

    def progress(done: int, total: int) -> None:
        if done == 2:
            reg.activate("standby", "promote")  # promoted while it follows

    report = replay(s, "standby", follow=True, progress=progress)
    assert report.promoted and report.read == 2 and reader.committed == 2 and reader.read_n == 3
    chunks, _ = table_names("standby")
    docs = {r["doc_id"] for r in LanceStore(s.lancedb_path(), chunks_table=chunks).chunk_rows("acme")}
    assert docs == {"d0", "d1"}  # the batch read after the promote was not written


def test_the_writer_lease_keeps_replay_and_switch_apart(s: Settings) -> None:
    leases = FakeLeases()
    reg = LanceIndexRegistry(s.lancedb_path())
    reg.register(new_manifest("green", s))
    replaying = leases.lease("green", 30)
    assert replaying.acquire()  # a replay of green runs
    with pytest.raises(IndexRefused, match="'green' is being replayed"):
        index_admin.promote(s, "green", lease=leases.lease("green", 30))
    assert reg.active() == "default"
    with pytest.raises(IndexRefused, match="being replayed"):
        replay(s, "green", lease=leases.lease("green", 30))  # a second replay of it
    replaying.release()
    index_admin.promote(s, "green", lease=leases.lease("green", 30))  # free: the switch takes and gives it back
    assert reg.active() == "green" and leases.lease("green", 30).acquire()
    switching = leases.lease("default", 30)
    assert switching.acquire()  # a rollback to default holds it ...
    with pytest.raises(IndexRefused, match="being replayed or switched to"):
        index_admin.rollback(s, lease=leases.lease("default", 30))
    with pytest.raises(IndexRefused, match="being replayed or switched to"):
        replay(s, "default", lease=leases.lease("default", 30))  # ... and no replay starts on it


class Sent:
    """The ingest worker's sink as a replay makes it (FlushThenCommitSink): what it was given, in ``log``."""

    def __init__(self, log: list[str]) -> None:
        self.log, self.msgs = log, []  # type: list[str], list[Outgoing]

    def build(self, step_id: str, worker_index: int, worker_count: int) -> Sent:
        return self

    def write_batch(self, items: list[Outgoing]) -> None:  # produced and flushed when it returns
        self.msgs.extend(items)
        self.log.append(f"sent {len(items)}")

    def close(self) -> None:
        pass

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(m.value) for m in self.msgs if m.topic == topic]


class ShortEmbedder(HashEmbedder):
    """A bug no stage foresees: one vector short for a batch holding a text with ``bomb`` in it."""

    def embed(self, texts: list[str]) -> np.ndarray:
        out = super().embed(texts)
        return out[:-1] if any("bomb" in t for t in texts) else out


def doc_records(names: list[str]) -> list[RawRecord]:
    return [RawRecord(value=json.dumps(change(d, 1, text=f"document {d} about glaciers and ice")).encode(),
                      key=f"acme/{d}".encode(), topic="docs", partition=0, offset=i) for i, d in enumerate(names)]


def wired(monkeypatch: pytest.MonkeyPatch, reader: Reader, embedder: HashEmbedder) -> Sent:
    sent = Sent(reader.log)
    monkeypatch.setattr(replay_mod, "check_reachable", lambda s: None)
    monkeypatch.setattr(replay_mod, "TopicReader", lambda *a, **kw: reader)
    monkeypatch.setattr(replay_mod, "embedder_for", lambda s: embedder)
    monkeypatch.setattr(replay_mod, "FlushThenCommitSink", lambda k, w, commit=None: sent)
    return sent


def test_a_record_that_breaks_a_replay_step_is_dead_lettered_alone(s: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replaying the active version (ingest stopped): the batch goes on without the record the embed step raised on;
    its dead letter and the others' index events leave through the ingest sink, flushed before the commit."""
    reader = Reader(doc_records(["a", "b", "bomb", "c"]), per_read=4)
    sent = wired(monkeypatch, reader, ShortEmbedder())
    report = replay(s, "default", ingest_stopped=True)
    assert report.caught_up and report.read == 4 and report.dead_letters == 1
    (dead,) = sent.on(s.topics.dead_letters)
    assert (dead["stage"], dead["code"], dead["original_key_b64"]) == ("embed", "internal", "YWNtZS9ib21i")
    assert dead["error"].startswith("IndexError")
    assert sorted(e["doc_id"] for e in sent.on(s.topics.index_events)) == ["a", "b", "c"]
    assert reader.log == ["sent 4", "commit 4"]  # flush, then commit
    docs = {r["doc_id"] for r in LanceStore(s.lancedb_path()).chunk_rows("acme")}
    assert docs == {"a", "b", "c"}


def test_a_record_that_killed_the_replay_twice_is_dead_lettered_at_the_next_run(
    s: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The replay's crash ledger: a replay that died twice with one record in hand (alone the second time)
    dead-letters it (stage crash) at the next run instead of processing it again; a standby's writes send
    no index events."""
    path = replay_ledger_path(s.worker.state_dir, "standby")
    for _ in range(2):  # each time the process "dies" in the step: the position stays in hand
        FileCrashLedger(path, "ingest").holding("embed", [("docs", 0, 1)]).__enter__()
    reader = Reader(doc_records(["a", "killer", "c"]), per_read=3)
    emb = HashEmbedder(fail_on="killer")  # would it be processed again, it would fail differently: stage embed
    sent = wired(monkeypatch, reader, emb)
    report = replay(s, "standby")
    assert report.caught_up and report.dead_letters == 1 and report.outcomes == {"indexed": 2}
    (dead,) = sent.on(s.topics.dead_letters)
    assert (dead["stage"], dead["code"]) == ("crash", "crashed")
    assert sent.on(s.topics.index_events) == []  # nothing reads a standby: no cache to invalidate
    assert reader.log == ["sent 1", "commit 3"]
    assert read_ledger(path)["convicted"] == [] and read_ledger(path)["dead_lettered"] == 1
    chunks, _ = table_names("standby")
    assert {r["doc_id"] for r in LanceStore(s.lancedb_path(), chunks_table=chunks).chunk_rows("acme")} == {"a", "c"}
