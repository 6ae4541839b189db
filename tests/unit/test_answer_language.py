"""A question is answered in its own language: its language read from its script, the no_answer text of the
gateway (OpenAI format, plain and streamed), the CLI and the chat page in it, and the prompt's line naming the
language to answer in."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from streamrag.core.generation.backend import GenerationRequest
from streamrag.core.generation.llm_generator import AnswerBudget, LLMGenerator
from streamrag.core.generation.prompt import build_prompt
from streamrag.core.language import NO_ANSWER, answer_instruction, language_of, no_answer_text
from streamrag.core.settings import Settings
from streamrag.gateway.app import create_app
from streamrag.schemas.models import Answer, AnswerDelta, Query
from tests.cdp import Browser, chromium_binary
from tests.fakes import ScriptedChat
from tests.unit.test_gateway import FakeBackend
from tests.unit.test_generation import ranked

JA = "経費精算の締め切りはいつですか？"
EN = "When is the deadline for expense reports?"
JA_NO_ANSWER = NO_ANSWER["ja"]
EN_NO_ANSWER = "No answer was found in the indexed documents."

QUESTIONS = [
    (JA, "ja"),
    ("大阪オフィスの社員食堂は何時から営業していますか？", "ja"),
    ("ＶＰＮの設定方法を教えてください", "ja"),  # full-width Latin, katakana
    ("有給休暇", "zh"),  # Han alone cannot be told from Chinese
    ("年假有多少天？", "zh"),
    ("휴가는 며칠입니까?", "ko"),
    ("ما هي عاصمة مصر؟", "ar"),
    (EN, ""),
    ("What does the word 経費 mean?", ""),  # an English question about a Japanese word
    ("Combien de jours de congé ?", ""),  # Latin script: not told apart, the prompt's general rule applies
    ("", ""),
    ("42?", ""),
]


@pytest.mark.parametrize(("question", "lang"), QUESTIONS)
def test_the_language_is_read_from_the_script_of_most_of_the_letters(question: str, lang: str) -> None:
    assert language_of(question) == lang


def test_the_no_answer_text_and_the_instruction_follow_the_question() -> None:
    assert no_answer_text(JA) == JA_NO_ANSWER and no_answer_text(EN) == EN_NO_ANSWER
    assert answer_instruction(JA) == "Answer in Japanese." and answer_instruction("휴가는 며칠입니까?") == "Answer in Korean."
    assert answer_instruction(EN) == ""


class NoAnswerBackend(FakeBackend):
    """Answers every query with a no_answer that has no text of its own (nothing relevant was found)."""

    async def ask(self, q: Query, timeout_s: float) -> AsyncIterator[AnswerDelta | Answer]:
        self.queries.append(q)
        yield Answer(query_id=q.query_id, tenant=q.tenant, status="no_answer")


def client() -> TestClient:
    s = Settings(_env_file=None, gateway_rate_limit="1000/minute")  # type: ignore[call-arg]
    return TestClient(create_app(s, backend=NoAnswerBackend()))


def chat(question: str, stream: bool) -> dict[str, Any]:
    return {"model": "x", "tenant": "acme", "stream": stream, "messages": [{"role": "user", "content": question}]}


@pytest.mark.parametrize(("question", "text"), [(JA, JA_NO_ANSWER), (EN, EN_NO_ANSWER)], ids=["ja", "en"])
def test_the_gateways_no_answer_is_in_the_questions_language(question: str, text: str) -> None:
    c = client()
    r = c.post("/v1/chat/completions", json=chat(question, stream=False))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == text
    r = c.post("/v1/chat/completions", json=chat(question, stream=True))
    datas = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    assert "".join(d["choices"][0]["delta"].get("content", "") for d in datas) == text


def test_the_prompt_names_the_answers_language_for_a_japanese_question() -> None:
    chat_model = ScriptedChat(reply="翌月10日です [1]。")
    gen = LLMGenerator(chat_model, AnswerBudget())
    gen.generate(GenerationRequest(question=JA, ranked=ranked("経費精算の締め切りは翌月10日です。"), top_k=1,
                                   deadline=time.monotonic() + 10))
    user = chat_model.calls[0][-1]["content"]
    assert user.endswith("answer: わかりません。\nAnswer in Japanese."), user
    en = build_prompt(EN, ranked("Reports are due by the 10th."), lambda t: len(t.split()), 1_000)
    assert en.messages[-1]["content"].endswith("If no source has the facts needed, answer: I don't know.")


def test_the_cli_says_no_answer_in_the_questions_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from streamrag.cli import app

    monkeypatch.setenv("STREAMRAG_LANCEDB_URI", str(tmp_path / "db"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STREAMRAG_GENERATOR", "extractive")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "canteen.md").write_text("# Canteen\n\nThe canteen opens at 11:30 and closes at 14:00.\n")
    assert CliRunner().invoke(app, ["ingest", str(docs), "--tenant", "acme"]).exit_code == 0
    r = CliRunner().invoke(app, ["ask", "モンゴルの首都はどこですか？", "--tenant", "acme"])
    assert r.exit_code == 0 and "no_answer" in r.stdout and JA_NO_ANSWER in r.stdout, r.output


PAGE = Path(__file__).resolve().parents[2] / "streamrag" / "gateway" / "static" / "index.html"


def test_the_chat_page_has_the_same_texts() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert all(text in page for text in NO_ANSWER.values())


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary")
def test_the_chat_pages_language_rule_is_the_servers() -> None:
    b = Browser(chromium_binary() or "")
    try:
        b.goto(PAGE.as_uri())
        for question, lang in QUESTIONS:
            got = b.js(f"NO_ANSWER[languageOf({json.dumps(question)})]")
            assert got == NO_ANSWER[lang], (question, got)
        # the page asks, the server answers no_answer without text: the page says so in the question's language
        sse = 'event: answer\\ndata: {"query_id": "q1", "status": "no_answer", "answer": "", "citations": []}\\n\\n'
        b.js(f"window.fetch = async () => new Response('{sse}', {{headers: {{'Content-Type': 'text/event-stream'}}}})")
        b.js(f"document.getElementById('question').value = {json.dumps(JA)}")
        b.js("document.getElementById('send').click()")
        b.wait_for("document.querySelector('.turn[data-status]') !== null", timeout=20)
        assert b.js("document.querySelector('.turn .a').textContent") == JA_NO_ANSWER
    finally:
        b.close()
