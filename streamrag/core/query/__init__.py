"""The query path, a Query into an Answer, as named steps: gate (identity, reply-to, expiry, options policy),
retrieve (cache, searches, fusion, rerank), generate, compose (answer, enriched citations, cache entry), run by
the thin coordinator ``processor.QueryProcessor``."""
