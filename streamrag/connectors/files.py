"""Turn files into raw document-change records: text files (.txt, .rst) as text, Markdown as text with its
type (its headings are kept), PDF, DOCX and HTML as their bytes (``content_b64``, typed by suffix, else by
content) for the ingest flow's ``extract`` stage; JSONL files (gzipped too: ``.jsonl.gz``) hold one DocumentChange
per line, and a line without a ``version`` gets one from the file's modification time, as other files do."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from streamrag.core.errors import StreamragError
from streamrag.core.extraction import MARKDOWN, SUFFIX_TYPES, TEXT, type_of
from streamrag.core.records import RawRecord

TEXT_SUFFIXES = {s for s, t in SUFFIX_TYPES.items() if t == TEXT}  # sent as text, chunked as they are
SUFFIXES = set(SUFFIX_TYPES) | {".jsonl"}  # what a folder is walked for (a file named alone is sent whatever it is)
JSONL_GZ = ".jsonl.gz"
UNKNOWN = "application/octet-stream"


def is_jsonl(f: Path) -> bool:
    return f.suffix.lower() == ".jsonl" or f.name.lower().endswith(JSONL_GZ)


def iter_files(paths: list[Path]) -> Iterator[tuple[Path, Path]]:
    """(file, root) pairs; directories are walked for known suffixes (hidden files and folders left out)."""
    for p in paths:
        if not p.exists():
            raise StreamragError(f"no such file or directory: {p}")
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                hidden = any(part.startswith(".") for part in f.relative_to(p).parts)
                if f.is_file() and (f.suffix.lower() in SUFFIXES or is_jsonl(f)) and not hidden:
                    yield f, p
        else:
            yield p, p.parent


def _title(text: str, fallback: str) -> str:
    for line in text.splitlines()[:20]:
        if line.startswith("# "):
            return line[2:].strip()
    return fallback


def _record(obj: dict[str, object], path: str | None = None) -> RawRecord:
    """The record of a change (key tenant/doc_id); ``path``: the file it came from (shown with its dead letter)."""
    key = f"{obj.get('tenant')}/{obj.get('doc_id')}".encode()
    return RawRecord(value=json.dumps(obj).encode("utf-8"), key=key, topic=path)


def _head(f: Path, limit: int) -> bytes:
    """The file's bytes, at most ``limit`` + 1 of them (one more than the limit is enough to refuse it)."""
    with f.open("rb") as fh:
        return fh.read(limit + 1)


def records_from_paths(paths: list[Path], tenant: str, max_bytes: int = 3_000_000) -> Iterator[RawRecord]:
    """One record per file (per line of a JSONL file), read lazily; a file over ``max_bytes`` is read only
    that far (the ``extract`` stage refuses it)."""
    for f, root in iter_files(paths):
        if is_jsonl(f):
            yield from _jsonl_records(f, tenant)
            continue
        st = f.stat()
        doc_id = f.relative_to(root).as_posix() if f != root else f.name
        data = _head(f, max_bytes)
        ctype = type_of(f.name, data)
        change: dict[str, object] = {
            "op": "upsert", "tenant": tenant, "doc_id": doc_id, "version": st.st_mtime_ns // 1000,
            "metadata": {"path": doc_id, "type": f.suffix.lower().lstrip(".")},
            "updated_at": datetime.fromtimestamp(st.st_mtime, UTC).isoformat(),
        }
        if ctype in (TEXT, MARKDOWN) and len(data) <= max_bytes:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None:
                if ctype == TEXT:  # as before: text, chunked as it is
                    yield _record({**change, "title": _title(text, f.stem), "text": text}, str(f))
                else:  # the extract stage keeps its headings (title: front matter, first heading, file name)
                    yield _record({**change, "text": text, "content_type": MARKDOWN}, str(f))
                continue
        yield _record({**change, "content_b64": base64.b64encode(data).decode("ascii"),
                       "content_type": ctype or UNKNOWN}, str(f))


def _jsonl_records(f: Path, tenant: str) -> Iterator[RawRecord]:
    """A record per line; defaults: this tenant, upsert, and the version the file's modification time (µs)
    plus the line's number (a later line about the same document wins; the unchanged file republished
    changes nothing)."""
    mtime_us = f.stat().st_mtime_ns // 1000
    opener = gzip.open if f.name.lower().endswith(".gz") else open
    with opener(f, "rb") as fh:
        try:
            lines = list(fh)
        except (OSError, EOFError) as exc:  # not gzip, or truncated
            raise StreamragError(f"{f}: unreadable ({exc})") from exc
        for n, raw in enumerate(lines, 1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):  # refused by the ingest flow, with its line
                yield RawRecord(value=line, key=None, topic=str(f), offset=n)
                continue
            obj.setdefault("tenant", tenant)
            obj.setdefault("op", "upsert")
            if obj.get("version") is None:
                obj["version"] = mtime_us + n
            yield RawRecord(value=json.dumps(obj).encode(), key=None, topic=str(f), offset=n)


def delete_record(tenant: str, doc_id: str, version: int | None = None) -> RawRecord:
    v = version if version is not None else int(datetime.now(UTC).timestamp() * 1_000_000)
    return _record({"op": "delete", "tenant": tenant, "doc_id": doc_id, "version": v})
