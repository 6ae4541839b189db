"""The query path: the processor that turns a Query into an Answer (identity, scope, cache, retrieval, answer)."""
