"""``streamrag demo``: ingest the bundled docs with the embedded path and answer a few questions."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import typer

from streamrag.cli.app import app, cli_errors, out, settings
from streamrag.cli.ask import build_query, print_answer
from streamrag.flows.components import make_query_processor
from streamrag.flows.index_views import IndexViews
from streamrag.flows.local import index_paths

DEMO_QUESTIONS = [
    "What happens when an older version of a document arrives after a newer one?",
    "Who can see a document that has no ACL?",
    "How do I scale embedding throughput?",
    "What is the capital of Mongolia?",
]


@app.command()
@cli_errors
def demo(tenant: str = typer.Option("demo", "--tenant", "-t")) -> None:
    """Ingest the bundled docs with the embedded path and answer a few questions."""
    s = settings()
    corpus = Path(str(files("streamrag.cli") / "corpus"))
    c = index_paths(s, [corpus], tenant).counts()
    out.print(f"[bold]ingested[/bold] {corpus}: {c.get('indexed', 0)} indexed, {c.get('unchanged', 0)} unchanged, "
              f"{c['dead_letters']} dead letters -> {s.index.lancedb_uri}", highlight=False)
    qp = make_query_processor(s, views=IndexViews(s))  # the active index version, as the workers
    for question in DEMO_QUESTIONS:
        out.rule(question)
        print_answer(qp.answer_many([build_query(question, tenant, top_k=3)])[0], False)
