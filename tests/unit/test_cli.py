"""The embedded commands end to end: ``streamrag ingest``, ``ask``, ``demo`` and ``eval`` (real model)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamrag.cli import app
from streamrag.core.settings import Settings
from streamrag.tools.evaluate import parse_configs, run_eval


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREAMRAG_LANCEDB_URI", str(tmp_path / "db"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STREAMRAG_GENERATOR", "extractive")  # generated answers: tests/unit/test_generation_local.py
    return tmp_path


def test_ingest_then_ask(env: Path) -> None:
    docs = env / "docs"
    docs.mkdir()
    (docs / "travel.md").write_text("# Travel policy\n\nA hotel night in Berlin is reimbursed up to 180 euros.\n")
    (docs / "bad.jsonl").write_text('{"doc_id": "x", "version": 1}\nnot json\n')
    r = CliRunner().invoke(app, ["ingest", str(docs), "--tenant", "acme", "--json"])
    assert r.exit_code == 1, r.output  # partly failed: two lines refused, the rest indexed
    report = json.loads(r.stdout)
    assert report["counts"]["indexed"] == 1 and report["counts"]["dead_letters"] == 2
    r = CliRunner().invoke(app, ["ask", "How much is a hotel night in Berlin?", "--tenant", "acme", "--json"])
    assert r.exit_code == 0, r.output
    a = json.loads(r.stdout)
    assert a["status"] == "ok" and a["citations"][0]["doc_id"] == "travel.md" and "180 euros" in a["answer"]
    # the full-text index was built after ingest: BM25 alone finds it too
    r = CliRunner().invoke(app, ["ask", "hotel Berlin", "--tenant", "acme", "--fusion", "bm25", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["citations"][0]["doc_id"] == "travel.md", r.output


def test_bad_arguments_are_one_line_and_non_zero(env: Path) -> None:
    r = CliRunner().invoke(app, ["ingest", str(env / "missing"), "--tenant", "acme"])
    assert r.exit_code == 1 and "no such file" in r.output
    r = CliRunner().invoke(app, ["ask", "q", "--tenant", "bad tenant!"])
    assert r.exit_code == 1 and "invalid query" in r.output
    r = CliRunner().invoke(app, ["ask", "q", "--tenant", "acme", "--fusion", "nope"])
    assert r.exit_code == 2
    for args, says in ((["--concurrency", "1,4"], "needs --generator openai"), (["--concurrency", "1,x"], "integers"),
                       (["--concurrency", "0", "--generator", "openai"], "positive")):
        r = CliRunner().invoke(app, ["bench", "load", *args])
        assert r.exit_code == 1 and says in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_demo_answers_from_the_bundled_docs(env: Path) -> None:
    r = CliRunner().invoke(app, ["demo"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())  # the console wraps long paths
    assert "ingested" in text and "0 dead letters" in text
    statuses = re.findall(r"\b(ok|no_answer|error)\b", r.stdout)
    assert statuses.count("ok") >= 3 and "no_answer" in statuses  # the capital of Mongolia is not in the docs


def test_eval_scores_a_tiny_beir_folder(env: Path) -> None:
    d = env / "beir"
    (d / "qrels").mkdir(parents=True)
    corpus = [("d1", "Kafka", "Kafka is a distributed log of records."), ("d2", "Redis", "Redis is an in-memory cache."),
              ("d3", "LanceDB", "LanceDB stores vectors for similarity search.")]
    (d / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in corpus))
    (d / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "in-memory cache"}) + "\n"
                                     + json.dumps({"_id": "q2", "text": "vector similarity search"}) + "\n")
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td3\t1\n"
                                     "q9\td1\t1\n")  # judged, no text: not asked, so not scored (BEIR)
    s = Settings(_env_file=None, lancedb_uri=str(env / "db"))  # type: ignore[call-arg]
    res = run_eval(s, d, parse_configs(["dense", "bm25", "hybrid-rrf"]), env / "evaldb", env / "emb.sqlite", log=lambda m: None)
    assert res["documents"] == 3 and res["queries"] == 2
    assert all(m["NDCG@10"] == 1.0 for m in res["results"].values())


def test_embedded_ingest_and_ask_follow_the_promoted_index(env: Path) -> None:
    from streamrag.core.index_versions import new_manifest
    from streamrag.flows.index_views import IndexViews

    docs = env / "docs"
    docs.mkdir()
    (docs / "old.md").write_text("# Parking\n\nParking in the garage costs 5 euros a day.\n")
    assert CliRunner().invoke(app, ["ingest", str(docs), "--tenant", "acme"]).exit_code == 0
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    views = IndexViews(s)
    views.registry.register(new_manifest("green", s))
    views.registry.activate("green", "promote")
    (docs / "old.md").unlink()
    (docs / "new.md").write_text("# Parking\n\nParking in the garage is now free for employees.\n")
    assert CliRunner().invoke(app, ["ingest", str(docs), "--tenant", "acme"]).exit_code == 0
    green = IndexViews(s).view("green").store.chunk_rows("acme")
    assert {r["doc_id"] for r in green} == {"new.md"}  # embedded ingest wrote the active version
    r = CliRunner().invoke(app, ["ask", "How much does parking in the garage cost?", "--tenant", "acme", "--json"])
    a = json.loads(r.stdout)
    assert a["index"] == "green" and a["citations"][0]["doc_id"] == "new.md", r.output
