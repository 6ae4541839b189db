"""Turn files into raw document-change records: text files (.txt, .rst) as text, Markdown as text with its
type (its headings are kept), PDF, DOCX and HTML as their bytes (``content_b64``, typed by suffix, else by
content) for the ingest flow's ``extract`` stage; JSONL files (gzipped too: ``.jsonl.gz``) hold one DocumentChange
per line, and a line without a ``version`` gets one from the file's modification time, as other files do.

What is refused, by name, through ``refused(where, reason)`` (the CLI prints each and exits non-zero), never
sent (#34): a JSONL line naming another tenant than ``--tenant``; a file of a walked folder that is a link
resolving outside that folder; a line longer than the message limit; a ``.jsonl.gz`` past its inflated-size
cap (it is streamed line by line: never inflated whole into memory).
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from streamrag.core.errors import StreamragError
from streamrag.core.extraction import MARKDOWN, SUFFIX_TYPES, TEXT, type_of
from streamrag.core.records import RawRecord

TEXT_SUFFIXES = {s for s, t in SUFFIX_TYPES.items() if t == TEXT}  # sent as text, chunked as they are
SUFFIXES = set(SUFFIX_TYPES) | {".jsonl"}  # what a folder is walked for (a file named alone is sent whatever it is)
JSONL_GZ = ".jsonl.gz"
UNKNOWN = "application/octet-stream"
GZ_RATIO = 50  # a .jsonl.gz may inflate to max_uncompressed bytes, or this many times its own size if larger

Refused = Callable[[str, str], None]  # (the file, or file:line, the reason)


def _raise(where: str, reason: str) -> None:
    raise StreamragError(f"{where}: {reason}")


def _outside(f: Path, root: Path) -> Path | None:
    """Where ``f`` really is, if that is outside ``root`` (a symbolic link out of the folder), else None."""
    real = f.resolve()
    return None if real.is_relative_to(root.resolve()) else real


def is_jsonl(f: Path) -> bool:
    return f.suffix.lower() == ".jsonl" or f.name.lower().endswith(JSONL_GZ)


def iter_files(paths: list[Path], refused: Refused = _raise) -> Iterator[tuple[Path, Path]]:
    """(file, root) pairs; directories are walked for known suffixes (hidden files and folders left out; a link
    to a file outside the folder is refused). A file named alone is read wherever it points."""
    for p in paths:
        if not p.exists():
            raise StreamragError(f"no such file or directory: {p}")
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                hidden = any(part.startswith(".") for part in f.relative_to(p).parts)
                if f.is_file() and (f.suffix.lower() in SUFFIXES or is_jsonl(f)) and not hidden:
                    if (real := _outside(f, p)) is not None:
                        refused(str(f), f"a link to {real}, outside {p}: not read")
                        continue
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


def records_from_paths(paths: list[Path], tenant: str, max_bytes: int = 3_000_000, *, refused: Refused | None = None,
                       max_line_bytes: int = 4 * 1024 * 1024, max_uncompressed: int = 50_000_000) -> Iterator[RawRecord]:
    """One record per file (per line of a JSONL file), read lazily; a file over ``max_bytes`` is read only
    that far (the ``extract`` stage refuses it). What is refused goes to ``refused`` (None: it is an error)."""
    refused = refused or _raise
    for f, root in iter_files(paths, refused):
        if is_jsonl(f):
            yield from _jsonl_records(f, tenant, refused, max_line_bytes, max_uncompressed)
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


def _lines(f: Path, refused: Refused, max_line: int, max_uncompressed: int) -> Iterator[tuple[int, bytes]]:
    """(number, line) of a JSONL file, streamed (gzip too); a line over ``max_line`` bytes is refused and
    skipped, and a gzipped file stops at its inflated-size cap (the rest refused)."""
    gz = f.name.lower().endswith(".gz")
    cap = max(max_uncompressed, GZ_RATIO * f.stat().st_size) if gz else None
    total = 0
    with gzip.open(f, "rb") if gz else f.open("rb") as fh:
        n = 0
        while True:
            try:
                line = fh.readline(max_line + 1)
            except (OSError, EOFError, ValueError) as exc:  # not gzip, or truncated
                raise StreamragError(f"{f}: unreadable ({exc})") from exc
            if not line:
                return
            n += 1
            total += len(line)
            long = len(line.rstrip(b"\n")) > max_line
            while long and not line.endswith(b"\n") and (cap is None or total <= cap):
                try:
                    line = fh.readline(1 << 20)  # the rest of a line too long: read on, in bounded pieces
                except (OSError, EOFError, ValueError) as exc:
                    raise StreamragError(f"{f}: unreadable ({exc})") from exc
                if not line:
                    break
                total += len(line)
            if cap is not None and total > cap:
                refused(f"{f}:{n}", f"uncompressed size over {cap} bytes (STREAMRAG_MAX_UNCOMPRESSED_BYTES, or "
                                    f"{GZ_RATIO} times the file): this line and the rest of the file not read")
                return
            if long:
                refused(f"{f}:{n}", f"a line longer than {max_line} bytes (STREAMRAG_MAX_MESSAGE_BYTES): not read")
                continue
            yield n, line


def _jsonl_records(f: Path, tenant: str, refused: Refused = _raise, max_line: int = 4 * 1024 * 1024,
                   max_uncompressed: int = 50_000_000) -> Iterator[RawRecord]:
    """A record per line; defaults: this tenant, upsert, and the version the file's modification time (µs)
    plus the line's number (a later line about the same document wins; the unchanged file republished
    changes nothing). A line naming another tenant is refused."""
    mtime_us = f.stat().st_mtime_ns // 1000
    for n, raw in _lines(f, refused, max_line, max_uncompressed):
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
        named = obj.setdefault("tenant", tenant)
        if named != tenant:
            refused(f"{f}:{n}", f"the line names tenant {str(named)[:100]!r}, not --tenant {tenant!r}: not sent")
            continue
        obj.setdefault("op", "upsert")
        if obj.get("version") is None:
            obj["version"] = mtime_us + n
        yield RawRecord(value=json.dumps(obj).encode(), key=None, topic=str(f), offset=n)


def delete_record(tenant: str, doc_id: str, version: int | None = None) -> RawRecord:
    v = version if version is not None else int(datetime.now(UTC).timestamp() * 1_000_000)
    return _record({"op": "delete", "tenant": tenant, "doc_id": doc_id, "version": v})
