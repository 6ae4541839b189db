"""The README is a front page: small, and a way to every page of the documentation; every link of the README and
of docs/ leads somewhere (a file, and a heading where it names one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MAX_README_BYTES = 12 * 1024


def prose(text: str) -> str:
    """The Markdown without its fenced code blocks (a ``# comment`` in a shell block is no heading)."""
    return re.sub(r"(?ms)^```.*?^```", "", text)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    out = set()
    for m in re.finditer(r"(?m)^#{1,6} (.+)$", prose(path.read_text(encoding="utf-8"))):
        out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path.read_text(encoding="utf-8")))


def test_the_readme_is_at_most_12_kb() -> None:
    size = len(README.read_bytes())
    assert size <= MAX_README_BYTES, f"README.md is {size} bytes (at most {MAX_README_BYTES}): move detail to docs/"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(README.parent / target.split("#", 1)[0]).resolve() for target in links(README)}
    missing = [p.relative_to(ROOT).as_posix() for p in PAGES if p.resolve() not in linked]
    assert PAGES and not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_leads_somewhere(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z]+:", target):  # http(s), mailto: not checked here
            continue
        file, _, fragment = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.name}: {broken}"


def test_the_readme_tells_a_newcomer_how_to_test_and_where_the_api_is() -> None:
    text = README.read_text(encoding="utf-8")
    for needle in ["bash scripts/test", "STREAMRAG_SKIP_INTEGRATION=1", "bash scripts/demo", "docker compose up",
                   "streamrag demo", "/docs", "docs/security.md", "## Security", "Java 17", "AVX2", "cmake"]:
        assert needle in text, needle
