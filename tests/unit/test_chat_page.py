"""The chat page in headless Chromium against the gateway (a real socket, a fake worker that is slow to its first
token): the sources panel fills before the first token, the answer streams beside it, a citation [n] opens its
passage (page and section), thumbs up posts feedback (JSON) for the answer's own query id, the conversation is
sent as the next question's context, and a Japanese question's answer is marked as Japanese. A screenshot is
kept (the test's folder; docs/img/chat-page.png too with STREAMRAG_SAVE_SCREENSHOTS=1)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from streamrag.core.settings import Settings
from streamrag.gateway.app import create_app
from tests.cdp import Browser, chromium_binary
from tests.unit.test_answer_sources import SourcesBackend
from tests.unit.test_gateway_security import Served

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img" / "chat-page.png"
FIRST_TOKEN_DELAY_S = 2.0


def ask(b: Browser, question: str, turns: int) -> None:
    b.js(f"document.getElementById('question').value = {json.dumps(question)}")
    b.js("document.getElementById('send').click()")
    b.wait_for(f"document.querySelectorAll('.turn[data-status]').length === {turns}", timeout=30)


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary")
def test_the_chat_page_shows_sources_before_the_first_token_then_the_conversation(tmp_path: Path) -> None:
    s = Settings(_env_file=None, gateway_rate_limit="1000/minute", gateway_user_rate_limit="1000/minute")  # type: ignore[call-arg]
    backend = SourcesBackend(delay_s=FIRST_TOKEN_DELAY_S)
    b = Browser(chromium_binary() or "")
    try:
        with Served(create_app(s, backend=backend), s) as served:
            b.goto(f"http://127.0.0.1:{served.port}/")
            b.js("document.getElementById('tenant').value = 'acme'")
            b.js("document.getElementById('question').value = 'How many vacation days do employees get?'")
            b.js("document.getElementById('send').click()")
            # the sources are shown while the model has not written a token yet
            b.wait_for("document.querySelectorAll('#sources li').length > 0", timeout=FIRST_TOKEN_DELAY_S - 0.5)
            assert b.js("document.querySelector('.turn').dataset.firstTokenAt === undefined")
            assert b.js("document.querySelector('.turn .a').classList.contains('pending')")
            assert b.js("document.querySelector('#sources .title').textContent").startswith("Vacation policy — p. 3")
            b.wait_for("document.querySelector('.turn[data-status]') !== null", timeout=30)
            turn = b.js("(() => { const t = document.querySelector('.turn'); return {sources: +t.dataset.sourcesAt, "
                        "first: +t.dataset.firstTokenAt, answer: t.querySelector('.a').textContent}; })()")
            assert turn["sources"] < turn["first"] - FIRST_TOKEN_DELAY_S * 900, turn  # ms
            assert turn["answer"] == "Employees get 25 days [1].", turn
            # a citation opens its passage, with its page and section
            b.js("document.querySelector('.turn a.cite').click()")
            assert not b.js("document.getElementById('passage').hidden")
            assert b.js("document.getElementById('passage-where').textContent").startswith("p. 3 · Leave \u203a Vacation")
            assert b.js("document.querySelector('#sources li.open').dataset.n") == "1"
            # thumbs up: feedback for the answer's own query id
            b.js("document.querySelector('button.rate[data-rating=\"1\"]').click()")
            b.wait_for("document.querySelector('button.rate.chosen') !== null", timeout=20)
            first_q = backend.queries[0]
            assert [(f.query_id, f.rating, f.tenant) for f in backend.feedback] == [(first_q.query_id, 1, "acme")]
            # the next question carries the conversation so far
            ask(b, "And who approves them?", turns=2)
            context = [(t.role, t.content) for t in backend.queries[1].context]
            assert context == [("user", "How many vacation days do employees get?"),
                               ("assistant", "Employees get 25 days [1].")]
            b.js("document.querySelector('.turn a.cite').click()")  # the first turn's passage again, for the picture
            shot = b.screenshot(tmp_path / "chat-page.png")
            # asked in Japanese: the answer is marked as Japanese (and a no_answer would say so in Japanese)
            ask(b, "有給休暇は何日ですか？", turns=3)
            assert b.js("document.querySelectorAll('.turn .a')[2].lang") == "ja"
            assert len(backend.queries[2].context) == 4
        assert shot.stat().st_size > 5_000
        if os.environ.get("STREAMRAG_SAVE_SCREENSHOTS") == "1":  # refresh the docs' picture on request only
            DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, DOCS_IMG)
    finally:
        b.close()
