"""``streamrag eval answers``: the pure scoring (core/answer_metrics.py) case by case, and the runner end to end
(a tiny BEIR folder and a SQuAD file through the CLI, the query path the workers use, the extractive generator)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamrag.cli import app
from streamrag.core.answer_metrics import (
    citation_scores,
    cited_docs,
    contains,
    first_sentence,
    normalize,
    refused,
    score_answer,
    token_recall,
)

EMMA_GOLD = ["Ethelred", "King Ethelred II"]


def test_gold_in_a_later_clause_of_the_first_sentence_counts() -> None:
    a = "Emma was the sister of Duke Richard II of Normandy and married King Ethelred II of England [1]. She was crowned in 1002 [2]."
    s = score_answer(a, EMMA_GOLD)
    assert s.contained and s.correct


def test_gold_only_in_a_later_sentence_does_not_count() -> None:
    """The held-out failure: a whole-answer match found the gold after a wrong first claim."""
    a = "Emma married Duke Richard II of Normandy [1]. Her second husband was King Ethelred II of England [2]."
    s = score_answer(a, EMMA_GOLD)
    assert not s.contained and not s.correct
    assert s.recall == 1.0 and not s.long_gold  # a name is never rescued by recall
    assert contains(a, "Ethelred")  # the old whole-answer match would have counted it


def test_first_sentence_ends() -> None:
    assert first_sentence("Spo0A is the key regulator [1]. Other genes matter too.") == "Spo0A is the key regulator [1]."
    assert first_sentence("It was 8.5 percent. Then more.") == "It was 8.5 percent."
    assert first_sentence("Shown by Smith et al. The value was 3.") == "Shown by Smith et al. The value was 3."
    assert first_sentence("Cases fell, e.g. Wuhan. Next one.") == "Cases fell, e.g. Wuhan."
    assert first_sentence("One line\nsecond line") == "One line"
    assert first_sentence("第二次コアビタシオンは1993年3月に始まった。その後、終わった。") == "第二次コアビタシオンは1993年3月に始まった。"
    assert first_sentence("本当ですか？はい！そうです") == "本当ですか？"
    assert first_sentence("no end at all") == "no end at all"


def test_japanese_compared_without_spaces_or_punctuation() -> None:
    assert contains("蚊取り線香で有名なのは 有田 市です。", "有田市")
    assert contains("田嶋 大樹（オリックス）が投げた", "田嶋大樹")
    assert contains("海抜\uff12\uff5e\uff13\uff4dの低地", "海抜2~3m")  # NFKC: full-width digits and letters
    assert not contains("有田川町です", "有田市")
    s = score_answer("伊東勤は西武の監督になった。その後ロッテ。", ["埼玉西武ライオンズ", "西武"])
    assert s.contained
    assert not score_answer("伊東勤はロッテの監督になった。その前は西武。", ["西武"]).contained
    # a name of 12 characters is 11 bigrams, still a name: recall does not rescue it from a later sentence
    late = score_answer("先発はオリックスの山本だった。オリックスの投手田嶋大樹も投げた。", ["オリックスの投手田嶋大樹"])
    assert late.recall == 1.0 and not late.long_gold and not late.correct
    clause = "第二次コアビタシオンは一九九三年三月の総選挙の後に始まった"
    assert score_answer("総選挙の後、第二次コアビタシオンは一九九三年三月に始まった。", [clause]).correct


def test_normalisation_and_whole_words() -> None:
    assert normalize("  The \uff21\uff22\uff23, [1] “quoted”  text!  ") == "the abc quoted text"
    assert contains("There are NINE species [2].", "nine species")
    assert not contains("about 18% of cases", "8%")
    assert contains("about 8% of cases", "8%")
    assert not contains("anything", "")
    assert contains("Straße", "STRASSE")  # case folding, not lower-casing


def test_token_recall_decides_only_for_long_golds() -> None:
    gold = "a vaccine should be inexpensive so that it can be administered widely in poor countries"
    para = "The vaccine must be inexpensive. It can then be administered widely, also in poor countries [1]."
    s = score_answer(para, [gold])
    assert s.long_gold and s.recall >= 0.5 and s.correct and not s.contained
    assert token_recall("nothing relevant", gold) == 0.0
    assert token_recall("x", "") == 0.0
    assert token_recall("the the cat", "the cat cat") == 0.5  # articles dropped, repeats counted
    assert not score_answer("Something else entirely.", [gold]).correct


def test_citations() -> None:
    sources = ["d1", "d2", "d3"]
    assert cited_docs("A [2]. B [1, 2]. C [7].", sources) == ["d2", "d1"]  # a marker past the sources: none
    assert cited_docs("No markers.", sources) == []
    assert citation_scores(["d1", "d2", "d1"], {"d1"}) == (True, 0.5)
    assert citation_scores(["d3"], {"d1"}) == (False, 0.0)
    assert citation_scores([], {"d1"}) == (False, None)


def test_refusals() -> None:
    assert refused("no_answer", "")
    assert refused("ok", "The sources do not mention the capital of Mongolia.")
    assert refused("ok", "資料には記載されていません。")
    assert not refused("ok", "Spo0A is the key regulator [1].")
    assert not refused("ok", "Rotavirus has nine species [1]. The sources do not say which is most common.")
    assert not refused("error", "")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREAMRAG_LANCEDB_URI", str(tmp_path / "db"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STREAMRAG_GENERATOR", "extractive")
    return tmp_path


def _beir(d: Path, docs: list[tuple[str, str, str]], questions: list[tuple[str, str, str, list[str]]]) -> Path:
    (d / "qrels").mkdir(parents=True)
    (d / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs))
    (d / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t, _, _ in questions))
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{doc}\t1\n" for q, _, doc, _ in questions))
    (d / "answers.jsonl").write_text("".join(json.dumps({"_id": q, "answers": a}) + "\n" for q, _, _, a in questions))
    return d


def test_eval_answers_on_a_beir_folder_with_unanswerable_questions(env: Path) -> None:
    d = _beir(env / "kb", [
        ("d1", "Hotels", "A hotel night in Berlin is reimbursed up to 180 euros. Receipts are required."),
        ("d2", "Trains", "Employees travel second class on trains shorter than four hours."),
        ("d3", "Parking", "Parking in the company garage costs 5 euros a day."),
    ], [
        ("q1", "How much is a hotel night in Berlin reimbursed?", "d1", ["180 euros"]),
        ("q2", "Which class do employees travel on short train trips?", "d2", ["second class"]),
        ("q3", "How much does parking in the garage cost?", "d3", ["5 euros a day"]),
    ])
    other = _beir(env / "other", [("x1", "Mongolia", "Ulaanbaatar is the capital of Mongolia.")],
                  [("u1", "What is the capital of Mongolia?", "x1", ["Ulaanbaatar"]),
                   ("u2", "Who painted the ceiling of the Sistine Chapel?", "x1", ["Michelangelo"])])
    out = env / "bench"
    r = CliRunner().invoke(app, ["eval", "answers", "--dataset", str(d), "--unanswerable-from", str(other),
                                 "--unanswerable", "2", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    m = res["results"]["extractive"]
    assert m["answerable"]["questions"] == 3 and m["unanswerable"]["questions"] == 2
    assert m["answerable"]["correct"] == 1.0 and m["answerable"]["citation_hit"] == 1.0
    assert 0 < m["answerable"]["citation_precision"] <= 1.0
    assert m["unanswerable"]["refused"] == 1.0 and m["answerable"]["wrongly_refused"] == 0.0
    assert m["latency_ms"]["final_p50"] > 0 and m["statuses"]["ok"] == 3
    written = list(out.glob("answers-kb-extractive*.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["results"]["extractive"] == m
    # a second run does not overwrite the first one's figures
    r = CliRunner().invoke(app, ["eval", "answers", "--dataset", str(d), "-n", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(list(out.glob("answers-kb-extractive*.json"))) == 2


def test_eval_answers_reads_squad_files_and_refuses_bad_input(env: Path) -> None:
    squad = {"version": "v2.0", "data": [{"title": "Normandy", "paragraphs": [
        {"context": "The Normans gave their name to Normandy, a region in France. Rollo was their first ruler.",
         "qas": [{"id": "s1", "question": "In what country is Normandy located?", "answers": [{"text": "France", "answer_start": 0}]},
                 {"id": "s2", "question": "Who was the first ruler of the Normans?", "answers": [{"text": "Rollo", "answer_start": 0}]},
                 {"id": "s3", "question": "What is the population of Tokyo?", "answers": [], "is_impossible": True}]}]}]}
    f = env / "dev.json"
    f.write_text(json.dumps(squad))
    r = CliRunner().invoke(app, ["eval", "answers", "--dataset", str(f), "--out", str(env / "bench"), "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)["results"]["extractive"]
    assert m["answerable"]["questions"] == 2 and m["unanswerable"]["questions"] == 1
    assert m["answerable"]["citation_hit"] == 1.0
    (env / "broken.json").write_text("not json")
    (env / "noanswers" / "qrels").mkdir(parents=True)
    (env / "noanswers" / "corpus.jsonl").write_text("")
    (env / "noanswers" / "queries.jsonl").write_text("")
    (env / "noanswers" / "qrels" / "test.tsv").write_text("")
    for bad in (env / "missing", env / "broken.json", env / "noanswers"):
        r = CliRunner().invoke(app, ["eval", "answers", "--dataset", str(bad), "--out", str(env / "bench")])
        assert r.exit_code == 1 and r.output.startswith("error:") and "Traceback" not in r.output, r.output


def test_questions_selected_and_unanswerable_ones_spread() -> None:
    from streamrag.core.records import RawRecord
    from streamrag.tools.answer_eval import Question, QuestionSet, corpus_subset, select

    def q(i: int, answerable: bool = True) -> Question:
        return Question(f"q{i}", f"question {i}?", ["gold"] if answerable else [], frozenset([f"d{i}"]) if answerable else frozenset())

    docs = [json.dumps({"doc_id": f"d{i}"}).encode() for i in range(10)]
    qset = QuestionSet("s", [q(0), q(1, False), q(2), q(3), q(4), q(5), q(6), q(7)], lambda: iter(RawRecord(value=d, key=None) for d in docs))
    other = QuestionSet("o", [q(100), q(101)], lambda: iter([]))
    picked = select(qset, 4, other, 2)
    assert [x.qid for x in picked if x.answerable] == ["q0", "q2", "q3", "q4"]  # -n counts answerable questions
    assert {x.qid for x in picked if not x.answerable} == {"q1", "other:q100", "other:q101"}
    assert [x.qid for x in picked] == ["q0", "q1", "q2", "other:q100", "q3", "other:q101", "q4"]  # spread evenly
    assert all(not x.gold_docs for x in picked if not x.answerable)
    asked = select(qset, 2, None, 0)
    kept = [json.loads(r.value or b"{}")["doc_id"] for r in corpus_subset(qset, asked, 4)]
    assert kept == ["d0", "d1", "d2", "d3"] and "d2" in kept  # the gold documents, then the first others
    kept = [json.loads(r.value or b"{}")["doc_id"] for r in corpus_subset(qset, select(qset, 0, None, 0), 3)]
    assert kept == ["d0", "d2", "d3", "d4", "d5", "d6", "d7"]  # gold documents are never left out
