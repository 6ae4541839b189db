"""Reindex and replay on real Kafka and LanceDB: blue-green while serving, resumable replays,
dead letters back in once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest

from streamrag.connectors.kafka_admin import ensure_topics, topic_offsets
from streamrag.connectors.lancedb_index_registry import LanceIndexRegistry
from streamrag.core.errors import IndexRefused
from streamrag.core.index_versions import table_names
from streamrag.core.security import doc_key
from streamrag.core.settings import Settings
from streamrag.flows.components import make_store
from streamrag.tools import index_admin
from streamrag.tools.replay import replay
from streamrag.tools.replay_dead_letters import replay_dead_letters
from tests.integration.conftest import ROOT, produce, read_topic, wait_for

pytestmark = pytest.mark.integration
TOPICS = ["Solar panels", "Sourdough bread", "Alpine glaciers", "Jazz harmony", "Tidal energy", "Beekeeping",
          "Railway signalling", "Coral reefs"]
DOC_IDS = [t.lower().replace(" ", "-") for t in TOPICS] + [f"k{i}" for i in range(60)] + ["big", "broken"]


def text_of(topic: str, version: int) -> str:
    words = " ".join(f"{topic.lower()} fact number {i} holds in revision {version}." for i in range(12))
    return f"{topic} are described here in revision {version}. {words}"


def doc(topic: str, version: int) -> tuple[str, dict[str, Any]]:
    doc_id = topic.lower().replace(" ", "-")
    return f"acme/{doc_id}", {"op": "upsert", "tenant": "acme", "doc_id": doc_id, "version": version,
                              "title": topic, "text": text_of(topic, version)}


def store_of(s: Settings, name: str) -> Any:
    chunks, docs = table_names(name)
    return make_store(s, chunks_table=chunks, docs_table=docs)


def versions(s: Settings, name: str) -> dict[str, tuple[int, bool]]:
    """tenant/doc_id -> (version, deleted) in index ``name``."""
    rows = store_of(s, name).doc_versions()
    return {k: v for k, v in ((f"acme/{d}", rows.get(doc_key("acme", d))) for d in DOC_IDS) if v is not None}


class QueryLoad:
    """A steady stream of queries (about 8/s) with their send times: ``sent`` when each was handed to the
    producer (a worker may read it from then on), ``delivered`` when the broker acknowledged it (a worker
    has been able to read it since, at the latest)."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.sent: dict[str, float] = {}
        self.delivered: dict[str, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.s.kafka.bootstrap, "linger.ms": 0})
        i = 0
        while not self._stop.is_set():
            qid = uuid.uuid4().hex
            topic = TOPICS[i % len(TOPICS)]
            self.sent[qid] = time.time()
            p.produce(self.s.topics.queries, key=qid.encode(), value=(
                f'{{"query_id": "{qid}", "tenant": "acme", "text": "What is said about {topic.lower()}?"}}'
            ).encode())
            p.flush(5)
            self.delivered[qid] = time.time()
            i += 1
            self._stop.wait(0.125)

    def __enter__(self) -> QueryLoad:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(10)


def test_reindex_while_serving_promote_and_rollback(settings: Settings, start_worker: Any) -> None:
    s = settings
    produce(s, s.topics.documents, [doc(t, 1) for t in TOPICS])
    start_worker("ingest")
    wait_for(lambda: len(versions(s, "default")) == len(TOPICS), timeout=120)
    start_worker("query")
    with QueryLoad(s) as load:
        read_topic(s, s.topics.answers, lambda m: any(m), timeout=120)  # serving (its start takes seconds)
        produce(s, s.topics.documents, [doc(TOPICS[0], 2), doc(TOPICS[1], 2)])  # live ingest goes on
        rep = replay(s, "green", overrides={"chunk_size": "24", "chunk_overlap": "4"})
        assert rep.created and rep.caught_up and rep.dead_letters == 0
        produce(s, s.topics.documents, [doc(TOPICS[2], 3)])  # after the replay: green is behind
        wait_for(lambda: versions(s, "default").get("acme/alpine-glaciers", (0, False))[0] == 3, timeout=60)
        with pytest.raises(IndexRefused, match="behind"):
            index_admin.promote(s, "green")
        again = replay(s, "green")  # resumes from its own offsets: only what it has not read
        assert not again.created and again.read < rep.read + 3
        index_admin.promote(s, "green")
        promoted_at = time.time()  # the switch is written when promote returns (its checks read both indexes first)
        time.sleep(3)
        produce(s, s.topics.documents, [doc(TOPICS[3], 4)])  # live ingest now writes green
        wait_for(lambda: versions(s, "green").get("acme/jazz-harmony", (0, False))[0] == 4, timeout=60)
        rolled_at = time.time()  # before the rollback: green until here ...
        index_admin.rollback(s)
        rolled_back_at = time.time()  # ... default from a second after it returns
        time.sleep(3)
    answers = {a["query_id"]: a for a in read_topic(
        s, s.topics.answers, lambda m: set(load.sent) <= {a["query_id"] for a in m if a}, timeout=90) if a}
    assert set(load.sent) <= set(answers), "every query is answered"
    chunks = {name: {(r["id"], r["version"]): " ".join(r["text"].split()) for r in store_of(s, name).chunk_rows("acme")}
              for name in ("default", "green")}
    assert chunks["green"] and any(v != chunks["default"].get(k) for k, v in chunks["green"].items())
    checked = 0
    for qid, sent in load.sent.items():
        a = answers[qid]
        assert a["status"] != "error", a
        assert a["index"] in ("default", "green")
        if promoted_at + 1 <= sent and load.delivered[qid] < rolled_at:
            assert a["index"] == "green", f"sent {sent - promoted_at:.2f}s after the promote, answered on {a['index']}"
        if sent >= rolled_back_at + 1:
            assert a["index"] == "default", f"sent {sent - rolled_back_at:.2f}s after the rollback, answered on {a['index']}"
        for c in a["citations"]:  # every citation is a chunk of the index version the answer names
            text = chunks[a["index"]].get((c["chunk_id"], c["version"]))
            if text is not None:  # (documents updated since are not checked)
                assert text.startswith(c["snippet"].rstrip("…")), (a["index"], c["chunk_id"])
                checked += 1
    served = {answers[q]["index"] for q, t in load.sent.items() if promoted_at + 1 <= t and load.delivered[q] < rolled_at}
    assert served == {"green"} and len(load.sent) > 40 and checked > len(load.sent) // 2
    assert LanceIndexRegistry(s.lancedb_path()).active() == "default"


def _replay_cmd(env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamrag.cli", "replay", "--index", name, "--set", "chunk_size=32",
         "--set", "chunk_overlap=4", "--set", "source_batch_size=4"],
        env={**os.environ, **env, "HF_HUB_OFFLINE": "1"}, cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )


def test_replay_killed_half_way_resumes_to_the_same_index(settings: Settings, env: dict[str, str]) -> None:
    s = settings
    many = [(f"acme/k{i}", {"op": "upsert", "tenant": "acme", "doc_id": f"k{i}", "version": 1 + i % 3,
                            "title": f"K{i}", "text": text_of(f"Topic {i}", 1 + i % 3)}) for i in range(60)]
    produce(s, s.topics.documents, many)
    want = {k for k, _ in many}
    p = _replay_cmd(env, "killed")
    try:
        wait_for(lambda: 4 <= len(want & set(versions(s, "killed"))) < len(want), timeout=120, interval=0.05)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)
    assert len(want & set(versions(s, "killed"))) < len(want), "killed before the end"
    for name in ("killed", "whole"):
        q = _replay_cmd(env, name)
        output = q.communicate(timeout=300)[0].decode()
        assert q.returncode == 0, output
    a, b = versions(s, "killed"), versions(s, "whole")
    assert a == b and want <= set(a)
    rows_a, rows_b = store_of(s, "killed").chunk_rows(), store_of(s, "whole").chunk_rows()
    ids_a = [r["id"] for r in rows_a]
    assert len(ids_a) == len(set(ids_a)), "no duplicate chunk ids"
    assert sorted((r["id"], r["version"], r["text"]) for r in rows_a) == sorted(
        (r["id"], r["version"], r["text"]) for r in rows_b)


def test_dead_letter_fixed_and_replayed_is_indexed_once(
    settings: Settings, start_worker: Any, tmp_path: Any
) -> None:
    tag = uuid.uuid4().hex[:6]  # topics, group and index of its own: the other tests' workers still run
    s = settings.model_copy(update={
        "topic_documents": f"dl-{tag}.documents", "topic_dead_letters": f"dl-{tag}.dead",
        "topic_index_events": f"dl-{tag}.events", "ingest_group": f"dl-{tag}", "lancedb_uri": str(tmp_path / "db"),
    })
    ensure_topics(s.kafka, s.topic_layout)
    own = {f"STREAMRAG_{k.upper()}": str(v) for k, v in s.flat().items() if k in (
        "topic_documents", "topic_dead_letters", "topic_index_events", "ingest_group", "lancedb_uri")}
    big = {"op": "upsert", "tenant": "acme", "doc_id": "big", "version": 1, "title": "Big",
           "text": "A long document about dead letters. " * 20}
    produce(s, s.topics.documents, [("acme/big", big), ("acme/broken", b"{not json")])
    strict = start_worker("ingest", overrides={**own, "STREAMRAG_MAX_DOC_CHARS": "300"})

    def dead_for(doc_key: str, replayed: bool) -> list[Any]:
        import base64

        msgs = read_topic(s, s.topics.dead_letters, lambda m: False, timeout=3)
        return [d for d in msgs if d and d.get("original_key_b64")
                and base64.b64decode(d["original_key_b64"]).decode() == doc_key and d.get("replayed", False) == replayed]

    wait_for(lambda: dead_for("acme/big", False) and dead_for("acme/broken", False), timeout=120, interval=1)
    # its offsets committed past both: the fixed worker does not read the originals again
    wait_for(lambda: topic_offsets(s.kafka, [s.topics.documents], s.worker.ingest_group)[s.topics.documents]["lag"] == 0, timeout=60)
    strict.kill()
    start_worker("ingest", overrides={**own, "STREAMRAG_MAX_DOC_CHARS": "100000"})  # the fix
    seen: list[tuple[int, int]] = []
    dry = replay_dead_letters(s, dry_run=True, progress=lambda done, total: seen.append((done, total)))
    assert dry.replayed >= 2
    assert seen and seen[-1][0] == seen[-1][1] >= 2  # the progress bar ends full: every record on the topic read
    first = replay_dead_letters(s)
    assert first.replayed == dry.replayed

    def indexed_big() -> list[Any]:
        events = read_topic(s, s.topics.index_events, lambda m: False, timeout=3)
        return [e for e in events if e and e["doc_id"] == "big" and e["status"] == "indexed"]

    wait_for(indexed_big, timeout=120, interval=1)
    wait_for(lambda: dead_for("acme/broken", True), timeout=60, interval=1)  # failed again: marked
    second = replay_dead_letters(s)
    assert second.replayed == 0 and second.skipped.get("failed again after a replay", 0) >= 1
    time.sleep(3)
    assert len(indexed_big()) == 1, "indexed once"
    assert versions(s, "default")["acme/big"] == (1, False)
