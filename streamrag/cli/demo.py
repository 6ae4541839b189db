"""``streamrag demo``: ingest the bundled handbook with the embedded path and answer a few questions.

The corpus (``streamrag/cli/corpus/``) is the handbook of a fictional company, Northwind Robotics: Markdown, PDF,
DOCX and HTML documents in English and Japanese, and one document only the ``hr`` role may read (a JSONL line
with an ACL). The questions show each format and language answered with citations (a PDF's page), a question
answered in Japanese, and the restricted document: not found without the role, found with it."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from streamrag.cli.app import app, cli_errors, json_option, out, print_report, settings, tenant_option
from streamrag.cli.ask import build_query, print_answer
from streamrag.core.query.processor import QueryProcessor
from streamrag.core.settings import Settings
from streamrag.flows.components import make_query_processor
from streamrag.flows.index_views import IndexViews
from streamrag.flows.local import index_paths
from streamrag.schemas.models import Answer


@dataclass(frozen=True)
class DemoQuestion:
    text: str
    expect: str | None  # a fact the answer holds; None: nothing is found (no_answer)
    doc_id: str = ""  # the document the first citation is from
    roles: str = ""  # the asker's roles (comma-separated); empty: none
    page: int | None = None  # the cited page (PDF)
    note: str = ""  # shown with the question


DEMO_QUESTIONS = [
    DemoQuestion("How many vacation days do new employees get?", "25 days", "handbook.md"),
    DemoQuestion("How much is reimbursed for a hotel night?", "180 euros", "expense-policy.pdf", page=2),
    DemoQuestion("What should I do if my laptop is stolen?", "24 hours", "it-security.docx"),
    DemoQuestion("経費精算の締め切りはいつですか？", "翌月10日", "expenses-ja.md"),
    DemoQuestion("大阪オフィスの社員食堂は何時から営業していますか？", "11時30分", "osaka-office-ja.html"),
    # the salary bands are readable by the hr role only: asked without it, nothing is found
    DemoQuestion("What is the salary band for a senior engineer?", None, note="asked without the hr role"),
    DemoQuestion("What is the salary band for a senior engineer?", "72,000", "hr-salary-bands.md", roles="hr",
                 note="asked as the hr role"),
    DemoQuestion("What is the capital of Mongolia?", None),
]


def corpus_path() -> Path:
    return Path(str(files("streamrag.cli") / "corpus"))


def ask_all(qp: QueryProcessor, tenant: str, questions: list[DemoQuestion] = DEMO_QUESTIONS) -> list[Answer]:
    """Each question's answer (as its asker: the question's roles), all in one batch."""
    return qp.answer_many([build_query(q.text, tenant, roles=q.roles or None, top_k=3) for q in questions])


def index_corpus(s: Settings, tenant: str) -> dict[str, int]:
    return index_paths(s, [corpus_path()], tenant).counts()


@app.command()
@cli_errors
def demo(tenant: str = tenant_option("demo"), json_out: bool = json_option()) -> None:
    """Ingest the bundled handbook with the embedded path and answer a few questions."""
    s = settings()
    c = index_corpus(s, tenant)
    if json_out:
        qp = make_query_processor(s, views=IndexViews(s))
        print_report({"ingested": c, "answers": [{"question": q.text, "roles": q.roles, **a.model_dump(mode="json")}
                                                 for q, a in zip(DEMO_QUESTIONS, ask_all(qp, tenant), strict=True)]},
                     True)
        return
    out.print(f"[bold]ingested[/bold] {corpus_path()}: {c.get('indexed', 0)} indexed, {c.get('unchanged', 0)} unchanged, "
              f"{c['dead_letters']} dead letters -> {s.index.lancedb_uri}", highlight=False)
    qp = make_query_processor(s, views=IndexViews(s))  # the active index version, as the workers
    for q, a in zip(DEMO_QUESTIONS, ask_all(qp, tenant), strict=True):
        out.rule(f"{q.text} ({q.note})" if q.note else q.text)
        print_answer(a, False, question=q.text)
