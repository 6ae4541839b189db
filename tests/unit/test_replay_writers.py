"""One writer per index version: a replay into the version live ingest writes (the active one) is refused, a
following replay stops when its version is promoted (that batch unwritten), and with the writer lease a version
being replayed is not switched to, nor is a version being switched to replayed."""

from __future__ import annotations

from typing import Any

import pytest

from streamrag.connectors.lancedb_index_registry import LanceIndexRegistry
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.errors import IndexRefused, ServiceUnavailable
from streamrag.core.index_versions import new_manifest, table_names
from streamrag.core.records import RawRecord
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
                    chunk_size=20, chunk_overlap=4, retry_max_s=1, _env_file=None)


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
    """The documents topic as a replay reads it: one record per read, committed positions counted."""

    def __init__(self, records: list[RawRecord]) -> None:
        self.records, self.read_n, self.committed = records, 0, 0

    def read(self, max_records: int, timeout_s: float) -> list[RawRecord]:
        self.read_n += 1
        assert self.read_n <= 10, "the replay went on reading"  # bounded: a replay that never stops fails here
        return self.records[self.read_n - 1:self.read_n]

    def commit(self) -> None:
        self.committed = self.read_n

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
