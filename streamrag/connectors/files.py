"""Turn files (txt, md, JSONL of DocumentChange) into raw document-change records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from streamrag.core.errors import StreamragError
from streamrag.core.records import RawRecord

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
SUFFIXES = TEXT_SUFFIXES | {".jsonl"}


def iter_files(paths: list[Path]) -> Iterator[tuple[Path, Path]]:
    """(file, root) pairs; directories are walked for known suffixes."""
    for p in paths:
        if not p.exists():
            raise StreamragError(f"no such file or directory: {p}")
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in SUFFIXES:
                    yield f, p
        else:
            yield p, p.parent


def _title(text: str, fallback: str) -> str:
    for line in text.splitlines()[:20]:
        if line.startswith("# "):
            return line[2:].strip()
    return fallback


def _record(obj: dict[str, object]) -> RawRecord:
    key = f"{obj.get('tenant')}/{obj.get('doc_id')}".encode()
    return RawRecord(value=json.dumps(obj).encode("utf-8"), key=key)


def records_from_paths(paths: list[Path], tenant: str) -> Iterator[RawRecord]:
    for f, root in iter_files(paths):
        if f.suffix.lower() == ".jsonl":
            for n, line in enumerate(f.read_bytes().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    yield RawRecord(value=line, key=None, topic=str(f), offset=n)
                    continue
                if isinstance(obj, dict):
                    obj.setdefault("tenant", tenant)
                    obj.setdefault("op", "upsert")
                    yield RawRecord(value=json.dumps(obj).encode(), key=None, topic=str(f), offset=n)
                else:
                    yield RawRecord(value=line, key=None, topic=str(f), offset=n)
            continue
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            yield RawRecord(value=f.read_bytes()[:1_000_000], key=None, topic=str(f))
            continue
        st = f.stat()
        doc_id = f.relative_to(root).as_posix() if f != root else f.name
        yield _record(
            {
                "op": "upsert",
                "tenant": tenant,
                "doc_id": doc_id,
                "version": st.st_mtime_ns // 1000,
                "title": _title(text, f.stem),
                "text": text,
                "metadata": {"path": doc_id, "type": f.suffix.lower().lstrip(".")},
                "updated_at": datetime.fromtimestamp(st.st_mtime, UTC).isoformat(),
            }
        )


def delete_record(tenant: str, doc_id: str, version: int | None = None) -> RawRecord:
    v = version if version is not None else int(datetime.now(UTC).timestamp() * 1_000_000)
    return _record({"op": "delete", "tenant": tenant, "doc_id": doc_id, "version": v})
