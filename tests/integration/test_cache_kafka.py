"""The semantic cache on real Redis and Kafka."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamrag.core.sealing import sealer_for
from streamrag.core.settings import Settings
from tests.integration.conftest import chunk_rows as rows
from tests.integration.conftest import produce, read_topic, wait_for

pytestmark = pytest.mark.integration
REDIS_PORT = 6391


class OwnRedis:
    """A redis-server of this test's own, so it can be stopped mid-test without touching others."""

    def __init__(self, d: Path) -> None:
        self.d = d
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen([exe, "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.d)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        wait_for(lambda: _ping(redis.Redis(port=REDIS_PORT, socket_timeout=0.2)), timeout=20, interval=0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _ping(r: Any) -> bool:
    try:
        return bool(r.ping())
    except Exception:
        return False


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    r = OwnRedis(tmp_path_factory.mktemp("redis"))
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def cache_env(env: dict[str, str], own_redis: OwnRedis) -> dict[str, str]:
    env["STREAMRAG_REDIS_URL"] = f"redis://127.0.0.1:{REDIS_PORT}/0"
    env["STREAMRAG_CACHE_THRESHOLD"] = "0.9"
    return env


def doc(doc_id: str, version: int, text: str, tenant: str = "acme", acl: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    return f"{tenant}/{doc_id}", {"op": "upsert", "tenant": tenant, "doc_id": doc_id, "version": version,
                                  "title": doc_id, "text": text, "acl": acl or {}}


@pytest.fixture(scope="module")
def workers(cache_env: dict[str, str], settings: Settings, start_worker: Any) -> dict[str, Any]:
    produce(settings, settings.topics.documents, [
        doc("vacation", 1, "Employees get twenty five days of paid vacation per year."),
        doc("salaries", 1, "The salary bands for engineers are reviewed yearly.", acl={"roles": ["hr"]}),
    ])
    w = {"ingest": start_worker("ingest")}
    wait_for(lambda: len(rows(settings)) >= 2, timeout=120)
    w["query"] = start_worker("query")
    return w


def ask(settings: Settings, text: str, tenant: str = "acme", user: str = "alice", roles: list[str] | None = None) -> dict[str, Any]:
    qid = uuid.uuid4().hex
    produce(settings, settings.topics.queries, [(qid, {"query_id": qid, "tenant": tenant, "text": text,
                                                      "principal": {"user": user, "roles": roles or []}})])
    msgs = read_topic(settings, settings.topics.answers, lambda m: any(a and a["query_id"] == qid for a in m), timeout=120)
    (a,) = [a for a in msgs if a and a["query_id"] == qid]
    return a


def test_repeat_and_paraphrases(settings: Settings, workers: Any) -> None:
    first = ask(settings, "How many vacation days do employees get?")
    assert first["status"] == "ok" and not first["cached"]
    again = ask(settings, "How many vacation days do employees get?")
    assert again["cached"] and again["cache_lookup"] == "exact" and again["answer"] == first["answer"]
    para = ask(settings, "how many days of vacation do employees get")
    assert para["cached"] and para["cache_lookup"] == "semantic"
    far = ask(settings, "What is the vacation allowance for staff?")
    assert not far["cached"]
    entries = read_topic(settings, settings.topics.cache, lambda m: len(m) >= 2, timeout=30)
    assert entries and all(e is None or e["tenant"] == "acme" for e in entries)


def test_isolation_across_tenant_and_acl(settings: Settings, workers: Any) -> None:
    hr = ask(settings, "What about the salary bands for engineers?", user="bob", roles=["hr"])
    assert any(c["doc_id"] == "salaries" for c in hr["citations"])
    plain = ask(settings, "What about the salary bands for engineers?", user="carol")
    assert not plain["cached"] and all(c["doc_id"] != "salaries" for c in plain["citations"])
    other = ask(settings, "How many vacation days do employees get?", tenant="globex")
    assert not other["cached"]


def test_update_invalidates_within_a_second(settings: Settings, workers: Any) -> None:
    assert ask(settings, "How many vacation days do employees get?")["cached"]
    produce(settings, settings.topics.documents, [doc("vacation", 2, "Employees now get thirty days of paid vacation per year.")])
    read_topic(settings, settings.topics.index_events,
               lambda m: any(e["doc_id"] == "vacation" and e["version"] == 2 for e in m), timeout=60)
    time.sleep(1.0)
    a = ask(settings, "How many vacation days do employees get?")
    assert not a["cached"] and "thirty" in a["answer"]


def test_restarted_worker_rebuilds_semantic_index(settings: Settings, workers: Any, start_worker: Any) -> None:
    assert ask(settings, "How many vacation days do employees get?")["cached"]
    workers["query"].kill()
    workers["query"] = start_worker("query")
    a = ask(settings, "how many days of vacation do employees get")
    assert a["cached"] and a["cache_lookup"] == "semantic"


def test_redis_down_answers_continue(settings: Settings, workers: Any, own_redis: OwnRedis) -> None:
    own_redis.stop()
    try:
        a = ask(settings, "Is there paid vacation for employees?")
        assert a["status"] == "ok" and not a["cached"]
        b = ask(settings, "Are salary bands reviewed?", user="bob", roles=["hr"])
        assert b["status"] == "ok"
    finally:
        own_redis.start()
    ask(settings, "Which engineers have salary bands?", user="bob", roles=["hr"])
    time.sleep(2.5)  # the client retries Redis after its back-off
    again = ask(settings, "Which engineers have salary bands?", user="bob", roles=["hr"])
    again = again if again["cached"] else ask(settings, "Which engineers have salary bands?", user="bob", roles=["hr"])
    assert again["cached"]


def test_status_shows_cache_hit_rates(cache_env: dict[str, str], workers: Any) -> None:
    import json
    import os
    import subprocess
    import sys

    def stats() -> Any:
        r = subprocess.run([sys.executable, "-m", "streamrag.cli", "status", "--json"], capture_output=True,
                           text=True, env={**os.environ, **cache_env}, timeout=60)
        assert r.returncode == 0, r.stderr
        return [v for v in json.loads(r.stdout)["cache_workers"].values() if v.get("lookups")]

    got = wait_for(stats, timeout=40, interval=2)
    assert all("hit_rate" in v and "lookup_ms_p95" in v for v in got)


def test_a_dead_follower_turns_hits_off_and_is_restarted(settings: Settings) -> None:
    """Kill the follower thread (an error applying an index event): the cache stops serving at once,
    the follower comes back, re-checks its entries against the index, and serving resumes."""
    from streamrag.connectors.cache_follower import CacheFollower
    from streamrag.core.cache.semantic_cache import SemanticCache

    cache = SemanticCache(None)
    follower = CacheFollower(settings.kafka, settings.topics, settings.json_limits, cache, sealer_for(settings), restart_after_s=3.0,
                             report_every_s=0.5)
    reports: list[dict[str, Any]] = []
    follower.publish_stats = reports.append
    real = cache.invalidate
    calls = {"n": 0}

    def dies_once(*a: Any, **k: Any) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("follower bug")
        return real(*a, **k)

    cache.invalidate = dies_once  # type: ignore[method-assign]
    follower.start(rebuild_timeout_s=10)
    try:
        produce(settings, settings.topics.index_events, [("acme/x", {"tenant": "acme", "doc_id": "x", "version": 9,
                                                                     "op": "upsert", "status": "indexed"})])
        wait_for(lambda: any(r["follower"] == "restarting" for r in reports), timeout=30, interval=0.05)
        assert not cache.serving and follower.state == "restarting" and follower.restarts == 1
        assert all(r["serving"] is False for r in reports if r["follower"] == "restarting")
        wait_for(lambda: follower.state == "following" and cache.serving, timeout=30, interval=0.1)
    finally:
        follower.stop()
