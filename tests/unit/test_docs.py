"""The reference pages are the code: docs/configuration.md is what the settings models generate (every variable with
its default), docs/cli.md what the typer commands generate (every command), and docs/http-api.md lists every
route of the gateway's application."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streamrag.cli.docgen import CLI_PAGE, NOTES_FILE, command_paths, import_notes, main, pages
from streamrag.core.settings import Settings
from streamrag.gateway.app import create_app
from streamrag.schemas.models import Answer, AnswerDelta, DocumentChange, Feedback, Query
from streamrag.tools.config_doc import PAGE as CONFIG_PAGE
from streamrag.tools.config_doc import default_of, shown

ROOT = Path(__file__).resolve().parents[2]
CONVERTER = r"\{(\w+):\w+\}"  # /v1/documents/{doc_id:path} is documented as {doc_id}
REGENERATE = "stale: run `python -m streamrag.cli.docgen` and commit the page"


def page(rel: str) -> str:
    return (ROOT / rel).read_text(encoding="utf-8")


@pytest.mark.parametrize("rel", [CONFIG_PAGE, CLI_PAGE])
def test_the_generated_pages_are_current(rel: str) -> None:
    assert page(rel) == pages()[rel], f"{rel} is {REGENERATE}"


def test_docgen_check_says_stale_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / CONFIG_PAGE).write_text("# Configuration\n", encoding="utf-8")
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert (tmp_path / CONFIG_PAGE).read_text(encoding="utf-8") == "# Configuration\n"
    assert not (tmp_path / CLI_PAGE).exists()
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0


def test_a_branch_s_readme_rows_become_notes_in_the_settings_order(tmp_path: Path) -> None:
    """The merge of a branch that added a README row instead of a description: its meaning is taken over."""
    original = NOTES_FILE.read_text(encoding="utf-8")
    line = next(x for x in original.splitlines() if x.startswith("    'STREAMRAG_KAFKA_PARTITIONS': "))
    notes = tmp_path / "config_notes.py"
    notes.write_text(original.replace(line + "\n", ""), encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text("| variable | default | meaning |\n|---|---|---|\n"
                      "| `STREAMRAG_KAFKA_PARTITIONS` | `2` | partitions for created topics |\n"
                      "| `STREAMRAG_KAFKA_BOOTSTRAP` | `x` | kept as it is |\n"
                      "| `STREAMRAG_NOT_A_SETTING` | `1` | left out |\n", encoding="utf-8")
    assert import_notes(readme, notes) == ["STREAMRAG_KAFKA_PARTITIONS"]
    assert notes.read_text(encoding="utf-8") == original
    assert import_notes(readme, notes) == []


def configuration_rows() -> dict[str, str]:
    rows = {}
    for line in page(CONFIG_PAGE).splitlines():
        m = re.match(r"^\| `(STREAMRAG_[A-Z0-9_]+)` \| (?:`([^`]*)`|\(empty\)) \|", line)
        if m:
            rows[m.group(1)] = (m.group(2) or "").replace("\\|", "|")
    return rows


def test_every_setting_is_documented_with_its_default() -> None:
    rows = configuration_rows()
    fields = {f"STREAMRAG_{name.upper()}": f for name, (_, _, f) in Settings.flat_fields().items()}
    assert set(rows) == set(fields), f"page only: {set(rows) - set(fields)}; Settings only: {set(fields) - set(rows)}"
    for env, f in fields.items():
        assert rows[env] == shown(default_of(f)), env


def test_every_command_is_in_the_cli_reference() -> None:
    headings = set(re.findall(r"(?m)^#{2,3} streamrag (.+)$", page(CLI_PAGE)))
    paths = command_paths()
    assert "cluster rescale" in paths and "replay" in paths and "replay dead-letters" in paths
    missing = [p for p in paths if p not in headings]
    assert not missing, f"commands docs/cli.md does not list: {missing}"


class IdleBackend:
    """A gateway backend that is never asked anything: the routes are only listed."""

    reply_topic = "streamrag.replies.docs"

    async def ask(self, q: Query, timeout_s: float) -> AsyncIterator[AnswerDelta | Answer]:
        yield Answer(query_id=q.query_id, tenant=q.tenant, status="error", error="not here")

    async def write_documents(self, changes: list[DocumentChange], wait_s: float, publisher: str = "") -> dict[str, str]:
        return {}

    async def send_feedback(self, fb: Feedback) -> None:
        return None

    async def document(self, tenant: str, doc_id: str) -> dict[str, Any] | None:
        return None

    async def readiness(self) -> dict[str, str]:
        return {}


def gateway_routes() -> list[str]:
    """``METHOD /path`` of every route of the application: its own, those of included routers (FastAPI keeps
    them behind the router they came from), and every path of its OpenAPI document."""
    app = create_app(Settings(_env_file=None), backend=IdleBackend())  # type: ignore[call-arg]
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes, prefix + str(getattr(getattr(route, "include_context", None), "prefix", "") or ""))
                continue
            for method in getattr(route, "methods", None) or ():
                found.add((method, prefix + getattr(route, "path", "")))

    walk(app.routes, "")
    for path, ops in app.openapi()["paths"].items():
        found.update((method.upper(), path) for method in ops)
    return sorted({method + " " + re.sub(CONVERTER, r"{\1}", path) for method, path in found if method != "HEAD"})


def test_every_gateway_route_is_in_the_http_reference() -> None:
    text = page("docs/http-api.md")
    routes = gateway_routes()
    assert "POST /v1/chat/completions" in routes and "GET /docs" in routes
    missing = [r for r in routes if f"`{r}`" not in text]
    assert not missing, f"routes docs/http-api.md does not list: {missing}"
