"""What the gateway's routes need from the rest of the system, and its Kafka / Redis / LanceDB implementation.

``Backend`` is the port the routes use (tests give them a fake); ``KafkaBackend`` asks the query workers over
Kafka (this process's reply topic), writes documents and feedback to their topics, reads documents from the
active index, and checks readiness (cheaply: at most once per ``READY_CACHE_S``). A reply is handed only to the
request that sent its query (its query_id, a uuid the gateway chose) and, when final, only if it is for that
request's tenant; an upload that waits for its documents awaits an event, holding no thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from anyio import to_thread
from pydantic import ValidationError

from streamrag.connectors.kafka_admin import check_reachable
from streamrag.connectors.kafka_replies import ReplyRouter
from streamrag.connectors.kafka_reply_topics import delete_topics, ensure_reply_topic, sweep_reply_topics
from streamrag.connectors.lancedb_documents import DocumentReader
from streamrag.connectors.redis_cache import redis_for
from streamrag.core.errors import ApplyTimeout, ServiceUnavailable
from streamrag.core.records import PUBLISHER_HEADER
from streamrag.core.settings import Settings
from streamrag.gateway.index_waits import IndexEventReader, IndexWaits
from streamrag.schemas.models import Answer, AnswerDelta, AnswerSources, DocumentChange, Feedback, Query

READY_CACHE_S = 2.0
# query workers re-list the broker's topics at most every 5 s (connectors.kafka_topics): until then a query naming
# a reply topic created just now is refused as naming an unknown topic
REPLY_TOPIC_SETTLE_S = 6.0
WORKER_RECENT_S = 60.0

log = logging.getLogger(__name__)


class AnswerTimeout(Exception):
    """No final answer within the time allowed."""


class DuplicateQuery(Exception):
    """A request with this query_id is already waiting in this process."""


class Backend(Protocol):
    def ask(self, q: Query, timeout_s: float) -> AsyncIterator[AnswerSources | AnswerDelta | Answer]: ...

    async def write_documents(self, changes: list[DocumentChange], wait_s: float, publisher: str = "") -> dict[str, str]: ...

    async def send_feedback(self, fb: Feedback) -> None: ...

    async def document(self, tenant: str, doc_id: str) -> dict[str, Any] | None: ...

    async def readiness(self) -> dict[str, str]: ...

    @property
    def reply_topic(self) -> str: ...


def reply_prefix(s: Settings) -> str:
    return next((p for p in s.worker.reply_topic_prefixes if p), "streamrag.replies.")


def default_reply_topic(s: Settings) -> str:
    """The first reply prefix + gateway- + host and pid: each replica its own topic (deleted when it stops,
    swept by another gateway when it died: connectors/kafka_reply_topics.py)."""
    host = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in socket.gethostname())[:60]
    return f"{reply_prefix(s)}gateway-{host}-{os.getpid()}"


class KafkaBackend:
    def __init__(self, s: Settings) -> None:
        self.s = s
        self._reply_topic = s.gateway.reply_topic or default_reply_topic(s)
        self.router: ReplyRouter | None = None
        self.reader = DocumentReader(s.lancedb_path())
        self.redis = redis_for(s.redis, s.cache.redis_prefix, timeout_s=0.5)
        self._ready: tuple[float, dict[str, str]] = (-1e9, {})
        self._reply_topic_created = -1e9
        self.index_waits = IndexWaits()
        self.index_events = IndexEventReader(s, self.index_waits)

    @property
    def reply_topic(self) -> str:
        return self._reply_topic

    def start(self) -> None:
        check_reachable(self.s.kafka)
        if ensure_reply_topic(self.s.kafka, self._reply_topic):
            self._reply_topic_created = time.monotonic()
        self.router = ReplyRouter(self.s.kafka, [self._reply_topic, self.s.topics.answers],
                                  heartbeat_topic=self._reply_topic)
        self.router.start()
        swept = sweep_reply_topics(self.s.kafka, reply_prefix(self.s), self._reply_topic,
                                   self.s.gateway.reply_topic_expire_s)
        if swept:
            log.info("deleted %d expired reply topics of stopped gateways: %s", len(swept), ", ".join(swept[:5]))

    def stop(self) -> None:
        self.index_events.stop()
        if self.router is not None:
            self.router.stop()
            if not self.s.gateway.reply_topic:  # this process's own topic (a configured one is the operator's)
                delete_topics(self.s.kafka, [self._reply_topic])

    def _router(self) -> ReplyRouter:
        if self.router is None:
            raise ServiceUnavailable("the gateway is not connected to Kafka yet")
        return self.router

    # -- queries ----------------------------------------------------------------------------------
    async def ask(self, q: Query, timeout_s: float) -> AsyncIterator[AnswerSources | AnswerDelta | Answer]:
        """Send the query; yield its sources (when it streams) and deltas as they come, then its final answer
        (AnswerTimeout after timeout_s)."""
        router = self._router()
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[dict[str, Any] | str] = asyncio.Queue()

        def deliver(item: dict[str, Any] | str) -> None:
            with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody waits any more
                loop.call_soon_threadsafe(inbox.put_nowait, item)

        if not router.register(q.query_id, deliver, tenant=q.tenant):
            raise DuplicateQuery(q.query_id)
        try:
            router.send(self.s.topics.queries, q.query_id, q.model_dump_json(exclude_none=True).encode(), q.query_id)
            deadline = loop.time() + timeout_s
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise AnswerTimeout(q.query_id)
                try:
                    item = await asyncio.wait_for(inbox.get(), left)
                except TimeoutError as exc:
                    raise AnswerTimeout(q.query_id) from exc
                if isinstance(item, str):
                    raise ServiceUnavailable(item)
                if item.get("query_id") != q.query_id:
                    continue  # not this request's
                try:
                    if item.get("kind") == "delta":
                        yield AnswerDelta.model_validate(item)
                        continue
                    if item.get("kind") == "sources":
                        yield AnswerSources.model_validate(item)
                        continue
                    answer = Answer.model_validate(item)
                except ValidationError:
                    continue  # not a message this gateway understands (another schema version): keep waiting
                if answer.tenant != q.tenant:
                    continue  # an answer for another tenant is never handed over
                yield answer
                return
        finally:
            router.unregister(q.query_id)

    # -- writes -----------------------------------------------------------------------------------
    async def write_documents(self, changes: list[DocumentChange], wait_s: float, publisher: str = "") -> dict[str, str]:
        """Publish the changes (``publisher``: the verified user, in header streamrag-publisher: the document history
        keeps it); with ``wait_s``, return each one's index status once the ingest worker applied it (the wait is an
        awaited event: no thread is held while it lasts)."""
        headers = [(PUBLISHER_HEADER, publisher.encode("utf-8")[:200])] if publisher else None
        wait = None
        if wait_s > 0:
            if not self.index_events.started:
                await to_thread.run_sync(self.index_events.ensure_started)
            wait = self.index_waits.expect({c.key: c.version for c in changes})
        try:
            await to_thread.run_sync(lambda: self._router().send_and_flush(
                self.s.topics.documents, [(c.key, c.model_dump_json(exclude_none=True).encode()) for c in changes],
                headers))
            if wait is None:
                return {}
            try:
                await asyncio.wait_for(wait.done.wait(), wait_s)
            except TimeoutError as exc:
                missing = wait.missing()
                raise ApplyTimeout(
                    f"{len(missing)} document(s) not applied within {wait_s:g} s (is an ingest worker running? "
                    f"streamrag worker ingest): {', '.join(missing[:3])}") from exc
            return dict(wait.seen)
        finally:
            if wait is not None:
                self.index_waits.forget(wait)

    async def send_feedback(self, fb: Feedback) -> None:
        await to_thread.run_sync(lambda: self._router().send_and_flush(
            self.s.topics.feedback, [(fb.query_id, fb.model_dump_json().encode())]))

    async def document(self, tenant: str, doc_id: str) -> dict[str, Any] | None:
        return await to_thread.run_sync(lambda: self.reader.document(tenant, doc_id))

    # -- readiness --------------------------------------------------------------------------------
    async def readiness(self) -> dict[str, str]:
        """Each dependency -> "ok" or why not (cached briefly: probes can be frequent)."""
        at, result = self._ready
        if time.monotonic() - at < READY_CACHE_S:
            return result
        result = await to_thread.run_sync(self._probe)
        self._ready = (time.monotonic(), result)
        return result

    def _probe(self) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            check_reachable(self.s.kafka, timeout=2.0)
            out["kafka"] = "ok" if self.router is not None else "not connected yet"
        except ServiceUnavailable as exc:
            out["kafka"] = str(exc)
        age = time.monotonic() - self._reply_topic_created
        out["reply_topic"] = "ok" if age >= REPLY_TOPIC_SETTLE_S else (
            f"{self._reply_topic} created {age:.0f} s ago: workers learn of it within {REPLY_TOPIC_SETTLE_S:g} s")
        out["redis"] = "ok" if self.redis.healthy() else f"redis at {self.s.redis.url} does not answer"
        try:
            self.reader.reachable()
            out["store"] = "ok"
        except Exception as exc:  # any failure to open the store means not ready
            out["store"] = f"LanceDB at {self.s.index.lancedb_uri} unreadable: {str(exc).splitlines()[0][:200]}"
        if self.s.gateway.ready_needs_worker:
            out["query_worker"] = self._worker_state(out["redis"] == "ok")
        return out

    def _worker_state(self, redis_ok: bool) -> str:
        """A query worker published its statistics to Redis lately, or answered this gateway in the last minute."""
        if self.router is not None and time.monotonic() - self.router.last_reply_at < WORKER_RECENT_S:
            return "ok"
        stats: Mapping[str, Any] | None = self.redis.all_stats() if redis_ok else None
        if stats:
            return "ok"
        return "no query worker seen (no statistics in Redis, no answer in the last minute)"
