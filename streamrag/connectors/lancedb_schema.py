"""Arrow schemas of the LanceDB tables: chunk rows (vectors, text, ACL tokens) and one row per document."""

from __future__ import annotations

import pyarrow as pa

CHUNKS = "chunks"
DOCS = "docs"

# where a chunk is in its document (extracted files): page (1-based) and heading path. Tables made before
# these columns existed gain them (all null) at their next write; until then their rows are written without.
PLACE_FIELDS = (pa.field("page", pa.int32()), pa.field("section", pa.string()))
PLACE_COLUMNS = tuple(f.name for f in PLACE_FIELDS)

# the analysed forms of the chunk text and the title that BM25 indexes (core/analysis.py: words, and character
# bigrams for scripts without spaces). Only tables made with them have them: an older table keeps its BM25 over
# the raw text and title (adding them would leave its rows without terms) until a reindex (replay + promote).
ANALYSIS_FIELDS = (pa.field("terms", pa.string()), pa.field("title_terms", pa.string()))
ANALYSIS_COLUMNS = tuple(f.name for f in ANALYSIS_FIELDS)


def chunk_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("doc_key", pa.string(), nullable=False),
            pa.field("tenant", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("chunk_no", pa.int32(), nullable=False),
            pa.field("version", pa.int64(), nullable=False),
            pa.field("content_hash", pa.string()),
            pa.field("title", pa.string()),
            pa.field("text", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
            pa.field("acl", pa.list_(pa.string())),
            pa.field("meta", pa.list_(pa.string())),
            pa.field("updated_ms", pa.int64()),
            *PLACE_FIELDS,
            *ANALYSIS_FIELDS,
        ]
    )


DOC_SCHEMA = pa.schema(
    [
        pa.field("doc_key", pa.string(), nullable=False),
        pa.field("tenant", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("deleted", pa.bool_()),
        pa.field("content_hash", pa.string()),
        pa.field("title", pa.string()),
        pa.field("chunk_count", pa.int32()),
        pa.field("metadata_json", pa.string()),
        pa.field("updated_ms", pa.int64()),
        pa.field("indexed_ms", pa.int64()),
    ]
)
