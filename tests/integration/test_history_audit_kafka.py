"""Operating with confidence, over real Kafka with the real ingest and query workers: a document rolled back to an
older version (``streamrag documents rollback``) is what the next answer cites; ``streamrag audit show`` says what
a past answer said (its text, chunks and index version); existing topics take the configured retention at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from streamrag.connectors.kafka_admin import admin, ensure_topics
from streamrag.connectors.kafka_retention import current_retention
from streamrag.core.settings import Settings
from tests.integration.conftest import ROOT, produce, wait_for
from tests.integration.conftest import chunk_rows as rows
from tests.integration.test_query_kafka import ask, doc, query

pytestmark = pytest.mark.integration
QUESTION = "How many vacation days do employees get?"


@pytest.fixture(scope="module")
def workers(settings: Settings, start_worker: Any) -> Any:
    produce(settings, settings.topics.documents, [doc("vacation", 1, "Employees get twenty five days of paid vacation per year.")])
    ingest = start_worker("ingest")
    wait_for(lambda: [r for r in rows(settings, "acme") if r["version"] == 1], timeout=120)
    return ingest, start_worker("query")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamrag.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env, "HF_HUB_OFFLINE": "1"}, cwd=ROOT, timeout=180)


def test_a_rolled_back_document_is_what_the_next_answer_cites(settings: Settings, env: dict[str, str],
                                                              workers: Any) -> None:
    produce(settings, settings.topics.documents, [doc("vacation", 2, "Employees now get thirty days of paid vacation per year.")])
    wait_for(lambda: [r for r in rows(settings, "acme") if r["version"] == 2], timeout=60)
    before = ask(settings, query(QUESTION))
    assert "thirty" in next(iter(before.values()))[0]["answer"]  # answered (and cached) on version 2

    r = cli(env, "documents", "rollback", "acme/vacation", "--to", "1", "--wait", "90", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"tenant": "acme", "doc_id": "vacation", "restored": 1, "version": 3, "status": "indexed"}

    qid, body = query(QUESTION)
    a = ask(settings, (qid, body))[qid][0]
    assert a["status"] == "ok" and "twenty five" in a["answer"] and "thirty" not in a["answer"]
    assert a["citations"][0]["doc_id"] == "vacation" and a["citations"][0]["version"] == 3

    h = cli(env, "documents", "history", "acme/vacation", "--json")
    assert h.returncode == 0, h.stderr
    got = json.loads(h.stdout)
    assert got["current"]["version"] == 3 and [v["version"] for v in got["versions"]] == [3, 2, 1]
    assert got["versions"][0]["publisher"].startswith("cli:") and got["versions"][0]["content_hash"] == \
        got["versions"][2]["content_hash"]  # the same content as version 1, as a new version


def test_audit_show_says_what_a_past_answer_said(settings: Settings, env: dict[str, str], workers: Any) -> None:
    qid, body = query(QUESTION, user="alice")
    a = ask(settings, (qid, body))[qid][0]
    assert a["status"] == "ok"
    r = wait_for(lambda: (x := cli(env, "audit", "show", qid, "--json")).returncode == 0 and x, timeout=60, interval=1)
    audit = json.loads(r.stdout)
    assert audit["query_id"] == qid and audit["principal"] == "alice"
    assert audit["answer_text"] == a["answer"] and audit["index"] == a["index"]
    assert [(c["chunk_id"], c["version"]) for c in audit["chunks"]] == [(c["chunk_id"], c["version"]) for c in a["citations"]]
    assert all(c["score"] > 0 for c in audit["chunks"]) and audit["timings_ms"]

    s = cli(env, "audit", "search", "--user", "alice", "--since", "1h", "--json")
    assert s.returncode == 0, s.stderr
    assert qid in [x["query_id"] for x in json.loads(s.stdout)]
    assert cli(env, "audit", "show", "no-such-query").returncode == 1


def test_existing_topics_take_the_configured_retention(settings: Settings) -> None:
    topic = settings.topics.audit
    longer = settings.model_copy(update={"audit_retention_days": 3.0})
    assert ensure_topics(longer.kafka, longer.topic_layout)[topic].startswith("retention changed")
    assert current_retention(admin(longer.kafka), [topic], 10)[topic] == str(3 * 24 * 3600 * 1000)
    assert ensure_topics(longer.kafka, longer.topic_layout)[topic] == "exists"  # already as configured: nothing altered
    ensure_topics(settings.kafka, settings.topic_layout)
    assert current_retention(admin(settings.kafka), [topic], 10)[topic] == str(90 * 24 * 3600 * 1000)
