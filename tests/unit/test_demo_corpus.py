"""The demo corpus (a fictional company's handbook, streamrag/cli/corpus/) through the embedded path with the real
embedding model: every format and language indexed, each demo question's answer holds its fact and cites its
document (a PDF's page), and the hr-only document is found only by the hr role."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrag.cli.demo import DEMO_QUESTIONS, DemoQuestion, ask_all, corpus_path, index_corpus
from streamrag.core.settings import Settings
from streamrag.flows.components import make_query_processor
from streamrag.flows.index_views import IndexViews
from streamrag.schemas.models import Answer

RESTRICTED = "hr-salary-bands.md"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, int], list[Answer]]:
    s = Settings(lancedb_uri=str(tmp_path_factory.mktemp("demo") / "db"), generator="extractive",  # type: ignore[call-arg]
                 _env_file=None)
    counts = index_corpus(s, "demo")
    return counts, ask_all(make_query_processor(s, views=IndexViews(s)), "demo")


def test_the_corpus_has_every_format_and_language_and_no_copy_of_the_readme() -> None:
    files = sorted(p.name for p in corpus_path().iterdir())
    assert {Path(f).suffix for f in files} == {".md", ".pdf", ".docx", ".html", ".jsonl"}, files
    assert sum("-ja." in f for f in files) >= 3 and "streamrag-readme.md" not in files
    assert all(p.stat().st_size < 64_000 for p in corpus_path().iterdir())  # small, committed files


def test_every_document_is_indexed(demo: tuple[dict[str, int], list[Answer]]) -> None:
    counts, _ = demo
    assert counts["indexed"] == len(list(corpus_path().iterdir())) and counts["dead_letters"] == 0, counts


@pytest.mark.parametrize("i", range(len(DEMO_QUESTIONS)), ids=[q.text[:40] + (f" [{q.roles}]" if q.roles else "")
                                                              for q in DEMO_QUESTIONS])
def test_each_demo_answer_holds_its_fact(demo: tuple[dict[str, int], list[Answer]], i: int) -> None:
    q: DemoQuestion = DEMO_QUESTIONS[i]
    a = demo[1][i]
    if q.expect is None:
        assert a.status == "no_answer", a
        return
    assert a.status == "ok" and q.expect in a.answer, a
    first = a.citations[0]
    assert first.doc_id == q.doc_id and (q.page is None or first.page == q.page), a.citations


def test_the_hr_document_is_cited_only_to_the_hr_role(demo: tuple[dict[str, int], list[Answer]]) -> None:
    for q, a in zip(DEMO_QUESTIONS, demo[1], strict=True):
        cited = {c.doc_id for c in a.citations}
        assert (RESTRICTED in cited) == ("hr" in q.roles.split(",")), (q, cited)
