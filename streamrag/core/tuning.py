"""Training pairs for adapting an embedding model to a tenant's corpus without labels.

Two kinds of pairs come from the documents themselves:
- title -> a chunk of its document (documents with titles: the title says what the text is about);
- inverse cloze: a chunk's first sentence -> the rest of the chunk (documents without titles).
Queries and relevance labels are never used: the point is to adapt to the corpus, not to a test set.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from typing import Any

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def training_pairs(chunks: Iterable[Mapping[str, Any]], max_pairs: int = 20_000, seed: int = 0) -> list[tuple[str, str]]:
    """(anchor, positive) pairs, at most one per document per kind, shuffled. ``chunks``: rows with
    doc_key, chunk_no, title, text."""
    by_doc: dict[str, list[Mapping[str, Any]]] = {}
    for c in chunks:
        by_doc.setdefault(str(c["doc_key"]), []).append(c)
    rng = random.Random(seed)
    pairs: list[tuple[str, str]] = []
    for rows in by_doc.values():
        rows = sorted(rows, key=lambda r: int(r["chunk_no"]))
        title = str(rows[0].get("title") or "").strip()
        if len(title.split()) >= 3:
            pairs.append((title, str(rng.choice(rows)["text"])))
            continue
        text = str(rng.choice(rows)["text"])
        parts = _SENTENCE.split(text, maxsplit=1)
        if len(parts) == 2 and len(parts[0].split()) >= 5 and len(parts[1].split()) >= 10:
            pairs.append((parts[0], parts[1]))
    rng.shuffle(pairs)
    return pairs[:max_pairs]
