"""``streamrag ask``: answer from the local index, or through a query worker with --via-kafka."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import typer
from pydantic import ValidationError

from streamrag.cli.app import app, cli_errors, json_option, out, settings, tenant_option
from streamrag.connectors.kafka_request import request_answer
from streamrag.core.auth import sign_token
from streamrag.core.errors import StreamragError
from streamrag.core.json_limits import describe_validation
from streamrag.core.language import no_answer_text
from streamrag.core.ports import Embedder
from streamrag.core.settings import Settings
from streamrag.flows.components import make_query_processor
from streamrag.flows.index_views import IndexViews
from streamrag.schemas.models import Answer, AnswerSources, Citation, Query
from streamrag.schemas.vocabulary import Fusion, Rerank


def build_query(
    text: str, tenant: str, user: str | None = None, roles: str | None = None, top_k: int = 5,
    fusion: str | None = None, alpha: float | None = None, rerank: str | None = None,
    filters: list[str] | None = None, stream: bool = False, expand: int = 0,
) -> Query:
    """Command-line arguments -> a validated Query (one clear line when they are not valid)."""
    meta: dict[str, Any] = {}
    for f in filters or []:
        if "=" not in f:
            raise StreamragError(f"bad --filter {f!r}: use key=value or key=v1|v2")
        k, v = f.split("=", 1)
        meta[k] = v.split("|") if "|" in v else v
    try:
        return Query.model_validate({
            "query_id": uuid.uuid4().hex, "tenant": tenant, "text": text, "top_k": top_k,
            "principal": {"user": user, "roles": [r for r in (roles or "").split(",") if r]},
            "filters": {"metadata": meta}, "options": {"fusion": fusion, "alpha": alpha, "rerank": rerank, "stream": stream,
                                                           "expand": expand},
        })
    except ValidationError as exc:
        raise StreamragError(f"invalid query: {describe_validation(exc)}") from exc


def where(c: Citation) -> str:
    return "".join((f", page {c.page}" if c.page else "", f", {c.section}" if c.section else ""))


class TerminalStream:
    """Prints an answer's sources as soon as they are known (before the model's first token), then its pieces as
    they are written (a reset marks text that was voided)."""

    def __init__(self) -> None:
        self.seq = 0

    def sources(self, s: AnswerSources) -> None:
        out.print("[dim]sources" + (" (cached answer)" if s.cached else "") + ":[/dim]" +
                  ("" if s.sources else " [dim]none[/dim]"))
        for i, c in enumerate(s.sources, 1):
            out.print(f"  [{i}] {c.title or c.doc_id} (v{c.version}, score {c.score:.4f}) {c.doc_id}{where(c)}",
                      markup=False, highlight=False)
            if c.snippet:
                out.print(f"      {c.snippet}", markup=False, highlight=False, style="dim")
        out.file.flush()

    def delta(self, text: str, generator: str) -> None:
        if self.seq == 0:
            out.print(f"[dim]{generator}:[/dim] ", end="")
        self.seq += 1
        out.print(text, end="", markup=False, highlight=False)
        out.file.flush()

    def reset(self, generator: str) -> None:
        out.print(f"\n[dim]({generator} failed; the text above is void)[/dim]")
        self.seq = 0

    def close(self) -> None:
        if self.seq:
            out.print()


def print_answer(a: Answer, json_out: bool, streamed: bool = False, question: str = "") -> None:
    if json_out:
        out.print_json(a.model_dump_json())
        return
    how = f" by {a.generator}" if a.generator else ""
    if a.fallback:
        how += f" (fell back: {'; '.join(a.fallback)})"
    out.print(f"[bold]{a.status}[/bold]" + (f" (cached: {a.cache_lookup})" if a.cached else ""), end="")
    out.print(how, markup=False, highlight=False)
    if a.error:
        out.print(f"error: {a.error}", markup=False, highlight=False)
    if a.answer and not (streamed and a.deltas and not a.fallback):
        out.print(a.answer, markup=False, highlight=False)
    elif a.status == "no_answer" and not a.answer:
        out.print(no_answer_text(question), markup=False, highlight=False)  # in the question's language
    if not a.grounded:
        out.print("  (not grounded: the answer cites no source)", highlight=False)
    for i, c in enumerate(a.citations, 1):
        out.print(f"  [{i}] {c.title or c.doc_id} (v{c.version}, score {c.score:.4f}) {c.doc_id}{where(c)}", markup=False,
                  highlight=False)
    if a.timings_ms:
        out.print("  timings ms: " + ", ".join(f"{k} {v:.1f}" for k, v in a.timings_ms.items()), highlight=False)
    if a.usage.prompt_tokens:
        u = a.usage
        out.print(f"  tokens: {u.prompt_tokens} in, {u.completion_tokens} out" + (f", cost {u.cost:g}" if u.cost else ""),
                  highlight=False)


def warm_up(embedder: Embedder) -> float:
    """Load the embedding model and run it once (ms): a cold process's loading is reported as ``load``,
    not as the query's ``embed`` time."""
    t0 = time.perf_counter()
    embedder.embed(["warm up"])
    embedder.embed_queries(["warm up"])
    return (time.perf_counter() - t0) * 1000


# What ``ask --via-kafka`` waits beyond the generation deadline (STREAMRAG_GENERATION_TIMEOUT_MS): the query's
# turn in the worker, retrieval, and an answer that falls back to the extractive one after the deadline.
ASK_WAIT_MARGIN_S = 15.0


def answer_wait_s(s: Settings, timeout: float | None) -> float:
    """Seconds ``ask --via-kafka`` waits for the answer: ``--timeout``, else the generation deadline plus margin."""
    return timeout if timeout is not None else s.generation.generation_timeout_ms / 1000 + ASK_WAIT_MARGIN_S


@app.command()
@cli_errors
def ask(
    question: str = typer.Argument(..., help="the question"),
    tenant: str = tenant_option(),
    user: str = typer.Option(None, "--user", "-u", help="the asking user (document ACLs)"),
    roles: str = typer.Option(None, "--roles", help="the asker's roles, comma-separated (document ACLs)"),
    top_k: int = typer.Option(5, "--top-k", "-k", help="sources retrieved"),
    fusion: Fusion | None = typer.Option(None, "--fusion", help="how dense and BM25 results merge (default "
                                         "STREAMRAG_FUSION)"),
    alpha: float = typer.Option(None, "--alpha", help="dense weight of weighted fusion, 0..1"),
    rerank: Rerank | None = typer.Option(None, "--rerank", help="rerank the sources (default STREAMRAG_RERANK)"),
    filters: list[str] = typer.Option(None, "--filter", help="metadata key=value (or key=a|b); repeatable"),
    via_kafka: bool = typer.Option(False, "--via-kafka", help="publish the query and wait for its answer"),
    stream: bool = typer.Option(False, "--stream", help="print the answer's sources first, then its tokens as they are written"),
    expand: int = typer.Option(0, "--expand", help="also search up to N generated rephrasings"),
    sign_secret_env: str = typer.Option(None, "--sign-secret-env",
                                        help="sign the query (HS256 JWT: tenant, --user, --roles) with the secret in this variable"),
    timeout: float = typer.Option(None, "--timeout", help="with --via-kafka, seconds to wait for the answer "
                                  f"(default: STREAMRAG_GENERATION_TIMEOUT_MS + {ASK_WAIT_MARGIN_S:g} s)"),
    json_out: bool = json_option(),
) -> None:
    """Answer a question from the index (locally, or through the query worker with --via-kafka)."""
    s = settings()
    q = build_query(question, tenant, user, roles, top_k, fusion, alpha, rerank,
                    filters, stream=stream, expand=expand)
    if sign_secret_env:
        secret = os.environ.get(sign_secret_env, "")
        if not secret:
            raise StreamragError(f"--sign-secret-env: ${sign_secret_env} is empty")
        key = s.auth.tenants.get(tenant)  # the tenant's issuer and audience, which a production worker requires
        q = q.model_copy(update={"auth_token": sign_token(secret, tenant, user or "cli", q.principal.roles,
                                                          issuer=key.issuer if key else "",
                                                          audience=key.audience if key else "")})
    term = TerminalStream() if stream and not json_out else None
    if via_kafka:
        a = request_answer(s.kafka, s.topics, s.worker, q, answer_wait_s(s, timeout), on_delta=term,
                           on_sources=term.sources if term else None)
    else:
        views = IndexViews(s, questions=True)
        load_ms = warm_up(views.current().embedder)
        # the fusion evidence workers measured (kept beside the index) is read, never measured nor waited for here
        a = make_query_processor(s, deltas=(lambda _q, _t: term) if term else None,
                                 views=views, measure_evidence=False).answer_many([q])[0]
        a = a.model_copy(update={"timings_ms": {"load": round(load_ms, 3), **a.timings_ms}})
    if term is not None:
        term.close()
    print_answer(a, json_out, streamed=term is not None, question=question)
    if a.status == "error":
        raise typer.Exit(1)
