"""What went wrong is read from error codes (``ErrorCode``), never from the words of a message: no code in
streamrag compares error text (prefixes, substrings) to decide a status, a metric or a count."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamrag.connectors.kafka_admin import already_exists
from streamrag.gateway.errors import STATUS_OF, status_of
from streamrag.schemas.vocabulary import ERROR_CODES

ROOT = Path(__file__).resolve().parents[2] / "streamrag"

# comparisons on the text of an error, an exception, a refusal or a message
PATTERNS = {
    "startswith/endswith on error text": re.compile(
        r"\b\w*(?:err|error|msg|message|why|reason|verified|refusal|refused|problem)\w*\s*(?:or\s*(?:\"\"|'')\s*\))?"
        r"\s*\.(?:startswith|endswith)\("),
    "substring of an exception's text": re.compile(r"\bin\s+(?:str|repr)\(\s*(?:exc|e|err|error|ex)\s*\)"),
    "substring of an answer's error": re.compile(r"\bin\s+\(?\s*[\w.]*(?:\berror\b|\.get\(\s*[\"']error[\"']\s*\))"),
    "substring of a message": re.compile(r"[\"'][^\"']*[\"']\s+in\s+\(?\s*[\w.]*\b(?:msg|message|why|reason)\b"),
}

# third-party exceptions that carry nothing but their text: classified where the adapter catches them
ALLOWED = {
    ("connectors/lancedb_errors.py", "in str(exc).lower()"): "lance raises plain errors whose text alone says "
                                                            "they are transient (I/O, commit conflicts)",
    ("connectors/sentence_embedder.py", '"out of memory" in str(exc).lower()'): "torch reports device memory "
                                                                                 "exhaustion as a RuntimeError",
}


def comparisons(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(f == rel and snippet in line for f, snippet in ALLOWED):
                continue
            found += [f"{rel}:{n}: {what}: {line.strip()}" for what, rx in PATTERNS.items() if rx.search(line)]
    return found


def test_no_code_reads_error_text() -> None:
    found = comparisons(ROOT)
    assert not found, "compare error codes, not message text:\n" + "\n".join(found)


@pytest.mark.parametrize("line", [
    '        if err.startswith(prefix):',
    '    raise ApiError(403 if verified.startswith("forbidden") else 401, verified)',
    '    if (answers[0].error or "").startswith("invalid query"):',
    '            if wait and "not applied within" in str(exc):',
    '    "expired": sum(1 for q in done if "deadline" in (q.answer.get("error") or "")),',
    '    if "expired" in a.error:',
    '    if "forbidden" in why:',
])
def test_the_comparisons_it_looks_for_are_found(tmp_path: Path, line: str) -> None:
    """What the scan would have caught before codes (the gateway's status by prefix, the upload timeout by words,
    the load bench's expired count)."""
    (tmp_path / "x.py").write_text(f"def f():\n{line}\n")
    assert comparisons(tmp_path)


@pytest.mark.parametrize("line", [
    '    if m.error() is not None or not value:',
    '    hidden = any(part.startswith(".") for part in parts)',
    '    return "invalid_query" if isinstance(exc, ConfigError) else "unavailable"',
    '    for e in errors:',
])
def test_ordinary_code_is_not_flagged(tmp_path: Path, line: str) -> None:
    (tmp_path / "x.py").write_text(f"def f():\n{line}\n")
    assert comparisons(tmp_path) == []


def test_every_status_is_of_a_known_code_and_the_rest_are_502() -> None:
    assert set(STATUS_OF) <= set(ERROR_CODES)
    assert status_of("deadline_exceeded") == status_of("expired") == 504
    assert status_of("generation_failed") == status_of(None) == 502


def test_a_topic_that_exists_is_known_by_kafkas_code() -> None:
    assert already_exists(KafkaException(KafkaError(KafkaError.TOPIC_ALREADY_EXISTS)))
    assert not already_exists(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)))
    assert not already_exists(RuntimeError("TOPIC_ALREADY_EXISTS"))  # the words alone are not the code
