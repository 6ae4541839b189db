"""The project's names, each defined once and imported wherever it is used (event contracts, settings,
retrieval, the CLI's choices, the flows' step names and dead-letter stages)."""

from __future__ import annotations

from typing import Literal, get_args

# how the vector and BM25 candidate lists are combined
Fusion = Literal["auto", "rrf", "weighted", "dense", "bm25"]
# the second stage over fused candidates
Rerank = Literal["none", "cross-encoder", "embedder", "mmr"]
# the generator tiers a chain is made of (extractive always ends it)
GeneratorTier = Literal["local", "openai", "extractive"]
# how a feedback rating is given: thumbs (-1 or 1) or stars (1 to 5)
FeedbackScale = Literal["thumbs", "stars"]
# what of each source goes into a prompt: the sentences that bear on the question, or whole chunks
PromptPacking = Literal["sentences", "chunks", "focused"]
# who said an earlier turn of a conversation (a chat's context)
TurnRole = Literal["user", "assistant"]
# kinds of personal data redacted at ingest
PiiKind = Literal["email", "phone", "card", "iban", "ip", "postal"]
# the ingest flow's named steps, in the order they run
IngestStage = Literal["parse", "extract", "redact", "newest", "stale_check", "chunk", "embed", "write"]
# the query flow's named steps, in the order they run
QueryStage = Literal["parse", "retrieve", "generate", "messages"]
# where a record can be dead-lettered: a step of either flow, the Kafka consumer, identity checks,
# the ingest flow's output step, or the crash ledger (the worker died with the record in hand, twice)
DeadLetterStage = Literal[
    "consume", "parse", "validate", "extract", "auth", "redact", "newest", "stale_check", "chunk", "embed", "write",
    "events", "retrieve", "generate", "messages", "crash",
    "answer",  # the query flow's one answering step before retrieve and generate were split (old dead letters)
]
# the kinds of worker process (``streamrag worker KIND``): metrics ports, crash ledgers, the benches' workers
WorkerKind = Literal["ingest", "query", "maintain"]
# what went wrong, as a code (error answers' ``code``, dead letters' ``code``): metrics, benches and the gateway's
# HTTP status read this, never the message text beside it
ErrorCode = Literal[
    "unauthenticated",  # no token, a bad or expired token, no key for the tenant
    "forbidden",  # the caller may not do this (another tenant's token, an admin-only option, a taken query id)
    "invalid_query",  # a query that is malformed or outside policy bounds (unknown prompt or index version too)
    "invalid_record",  # a record that is not valid JSON or not a valid document change (ingest)
    "expired",  # a query older than STREAMRAG_QUERY_MAX_AGE_S when the worker read it
    "deadline_exceeded",  # the query's own deadline (deadline_ms) passed before it was answered
    "rate_limited",  # over a tenant's or address's limits (the gateway)
    "unavailable",  # a dependency (Kafka, Redis, the store, an index version) did not answer
    "consume_failed",  # the Kafka consumer could not read the record
    "extraction_failed",  # no text could be extracted from a document
    "embedding_failed",  # the embedding model failed
    "retrieval_failed",  # retrieval or reranking failed
    "generation_failed",  # writing the answer failed
    "write_failed",  # writing to the index failed
    "crashed",  # the worker died twice with the record in hand
    "internal",  # anything else: a step raised where it should not have
]
GENERATOR_TIERS: tuple[GeneratorTier, ...] = get_args(GeneratorTier)
FUSIONS: tuple[str, ...] = get_args(Fusion)
RERANKS: tuple[str, ...] = get_args(Rerank)
INGEST_STAGES: tuple[IngestStage, ...] = get_args(IngestStage)
DEAD_LETTER_STAGES: tuple[str, ...] = get_args(DeadLetterStage)
ERROR_CODES: tuple[ErrorCode, ...] = get_args(ErrorCode)
WORKER_KINDS: tuple[WorkerKind, ...] = get_args(WorkerKind)
