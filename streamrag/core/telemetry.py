"""Prometheus metrics of every worker (prometheus_client). Each worker process serves its own registry
(``STREAMRAG_METRICS_PORT`` + an offset per worker kind and process), so nothing is counted twice:
Prometheus sums over targets. Labels are bounded: stage names, statuses, tenants, model names, and a
dead letter's reason category (the text before its first colon), never free text."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# an answer's buckets hold every SLO threshold of deploy/prometheus/slo-*.yml (1 and 3 s GPU; 15 and 30 s CPU)
_ANSWER = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0)

STAGE_SECONDS = Histogram("streamrag_stage_seconds", "Time spent per stage and batch or query",
                          ["flow", "stage"], buckets=_LATENCY)
RECORDS = Counter("streamrag_records_total", "Records in and out of each flow, by outcome",
                  ["flow", "outcome"])
DEAD_LETTERS = Counter("streamrag_dead_letters_total", "Dead-lettered records by stage and reason (its error code)",
                       ["flow", "stage", "reason"])
ANSWERS = Counter("streamrag_answers_total", "Answers by tenant, status and generator",
                  ["tenant", "status", "generator"])
ANSWER_SECONDS = Histogram("streamrag_answer_seconds", "Time to answer a query in the worker (all stages)",
                           buckets=_ANSWER)
TTFT_SECONDS = Histogram("streamrag_time_to_first_token_seconds", "Time until an answer's first piece could leave the "
                         "worker: stages before generation plus the model's first token (a whole answer: its time)",
                         buckets=_ANSWER)
RETRIEVAL_SECONDS = Histogram("streamrag_retrieval_seconds", "Time to ranked context of a searched query: expand, "
                              "embed, search, fuse, rerank (cache hits are not searched)", buckets=_LATENCY)
VARIANT_ANSWERS = Counter("streamrag_variant_answers_total", "Answers to queries of an A/B variant, by variant "
                          "(experiment/variant), status and who answered", ["variant", "status", "generator"])
VARIANT_ANSWER_SECONDS = Histogram("streamrag_variant_answer_seconds", "Time to answer a query of an A/B variant "
                                   "in the worker", ["variant"], buckets=_LATENCY)
EMPTY_RESULTS = Counter("streamrag_empty_results_total", "Queries whose retrieval found no chunk", ["tenant"])
CACHE_LOOKUPS = Counter("streamrag_cache_lookups_total", "Semantic cache lookups by result", ["result"])
CACHE_ERRORS = Gauge("streamrag_cache_errors", "Redis errors seen by this worker's cache (cumulative)")
CACHE_REFUSALS = Gauge("streamrag_cache_refusals", "Cache hits refused, cumulative: guard (opposite question), "
                       "unsafe (ACL or stale), bypassed (follower down)", ["reason"])
LLM_TOKENS = Counter("streamrag_llm_tokens_total", "Generator tokens by tenant, model and kind",
                     ["tenant", "model", "kind"])
LLM_COST = Counter("streamrag_llm_cost_total", "Generator cost by the configured price table", ["tenant", "model"])
FALLBACKS = Counter("streamrag_generator_fallbacks_total", "Answers a later tier wrote, by the tier that failed",
                    ["tier"])
FRESHNESS = Histogram("streamrag_index_freshness_seconds", "Document event time to searchable",
                      buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600))
QUERY_READ_OFFSET = Gauge("streamrag_query_read_offset", "The next offset the query worker reads per partition "
                          "(it stops while every generation slot is busy)", ["topic", "partition"])
GENERATION_SLOTS_BUSY = Gauge("streamrag_generation_slots_busy", "Queries generating or waiting for a generation slot")
CONSUMER_LAG = Gauge("streamrag_consumer_lag", "Messages not yet processed per partition",
                     ["group", "topic", "partition"])
INDEX_CHUNKS = Gauge("streamrag_index_chunks", "Chunks in the index per tenant", ["tenant"])
PII_REDACTIONS = Counter("streamrag_pii_redactions_total", "PII redacted at ingest, by kind", ["kind"])
INJECTION_FLAGS = Counter("streamrag_injection_flagged_total", "Documents flagged at ingest", ["flag"])
AUTH_REJECTED = Counter("streamrag_auth_rejected_total", "Queries refused by identity checks", ["reason"])
EMBEDDINGS = Counter("streamrag_embeddings_total", "Chunk embeddings at ingest: encoded, or reused from an index "
                     "holding the same text and model", ["source"])
STORE_READ_ERRORS = Counter("streamrag_store_read_errors_total", "Optional index reads that failed (work went on "
                            "without them)", ["what"])
SEARCH_FAILURES = Counter("streamrag_search_failures_total", "Searches that failed; the query was answered from "
                          "the other retriever (degraded) or, both failing, with an error", ["retriever"])
LLM_ANSWERS = Counter("streamrag_llm_answers_total", "Answers a model wrote, by outcome (grounded, ungrounded, "
                      "refusal)", ["generator", "outcome"])
LLM_CITATION_MARKERS = Counter("streamrag_llm_citation_markers_total", "Citation markers models wrote: valid, or "
                               "fixed (invalid or unsupported, removed)", ["generator", "kind"])
LLM_INJECTIONS_REMOVED = Counter("streamrag_llm_injections_removed_total", "Instruction-like source sentences "
                                 "removed from prompts", ["generator"])
STEP_FAILURES = Counter("streamrag_step_failures_total", "Unexpected exceptions in a flow step, each isolated to "
                        "its record and dead-lettered (a bug: see the worker log)", ["flow", "stage", "exception"])
FOLLOWER_SKIPPED = Counter("streamrag_follower_skipped_total", "Unreadable cache or index-event records the cache "
                           "follower skipped", ["topic"])
CRASH_RESTARTS = Gauge("streamrag_worker_crash_restarts", "Times this worker restarted after dying with records in "
                       "hand (its crash ledger)", ["flow"])
CRASH_LEDGER_WRITE_FAILURES = Counter("streamrag_crash_ledger_write_failures_total", "Crash-ledger writes that "
                                      "failed (full or read-only disk): the worker goes on unprotected", ["flow"])
CRASH_DEAD_LETTERS = Counter("streamrag_crash_dead_letters_total", "Records dead-lettered because the worker died "
                             "on them alone", ["flow"])
DECRYPT_FAILURES = Counter("streamrag_decrypt_failures_total", "Stored payloads that did not decrypt (wrong or "
                           "retired key, tampered, or in clear while keys are set): treated as missing", ["what"])
ACTIVE_INDEX = Gauge("streamrag_active_index_info", "1 for the index version this worker serves or writes", ["index"])


def observe_stages(flow: str, timings_ms: Mapping[str, float]) -> None:
    for stage, ms in timings_ms.items():
        STAGE_SECONDS.labels(flow, stage).observe(ms / 1000)
EMBEDDING_DRIFT = Gauge("streamrag_embedding_drift", "1 - cosine(reference centroid, recent centroid) of embeddings",
                        ["kind", "tenant"])
EMBEDDING_NORM_SPREAD = Gauge("streamrag_embedding_norm_spread", "std / mean of embedding norms in the recent window",
                              ["kind", "tenant"])
