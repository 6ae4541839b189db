"""The gateway's document history and rollback (over HTTP through the app): the caller's tenant only, document
roles with auth on, JSON bodies only, and a rollback that publishes the kept content as a new, higher version."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from streamrag.connectors.lancedb_history import LanceHistory
from tests.unit.test_gateway import SECRET, bearer, make


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TEST_SECRET", SECRET)
    monkeypatch.setenv("GW_TEST_SECRET_G", "g" * 40)


def kept(db: Path, tenant: str = "acme") -> None:
    rows: list[dict[str, Any]] = [
        {"doc_key": "", "tenant": tenant, "doc_id": "vacation", "version": v, "op": op, "content_hash": f"h{v}",
         "title": "Vacation", "text": text, "metadata_json": '{"team": "hr"}', "acl_json": '{"roles": ["staff"]}',
         "publisher": "alice", "index": "default", "applied_ms": int(time.time() * 1000) + v, "chunk_count": 1}
        for v, op, text in ((1, "upsert", "Twenty five days."), (2, "upsert", "Thirty days."), (3, "delete", ""))
    ]
    from streamrag.core.security import doc_key

    LanceHistory(str(db)).record([{**r, "doc_key": doc_key(r["tenant"], r["doc_id"])} for r in rows])


def test_history_lists_versions_and_rollback_publishes_a_new_version(tmp_path: Path) -> None:
    kept(tmp_path / "db")
    c, fake = make(lancedb_uri=str(tmp_path / "db"))
    h = c.get("/v1/documents/vacation/history?tenant=acme")
    assert h.status_code == 200, h.text
    assert [(v["version"], v["op"], v["publisher"]) for v in h.json()["versions"]] == [
        (3, "delete", "alice"), (2, "upsert", "alice"), (1, "upsert", "alice")]
    assert "text" not in h.json()["versions"][0]
    r = c.post("/v1/documents/vacation/rollback", json={"tenant": "acme", "to": 1})
    assert r.status_code == 202 and r.json()["version"] == 4  # above the history's newest (3) and the index's (2)
    assert fake.publishers == [""]  # auth off: nobody verified
    (ch,) = fake.changes
    assert (ch.tenant, ch.doc_id, ch.version, ch.text, ch.acl.roles, ch.metadata) == (
        "acme", "vacation", 4, "Twenty five days.", ["staff"], {"team": "hr"})
    r = c.post("/v1/documents/vacation/rollback?wait=5", json={"tenant": "acme", "to": 2})
    assert r.status_code == 200 and r.json()["status"] == "indexed"
    assert c.post("/v1/documents/vacation/rollback", json={"tenant": "acme", "to": 9}).status_code == 404
    assert c.post("/v1/documents/vacation/rollback", json={"tenant": "acme", "to": 3}).status_code == 409
    assert c.post("/v1/documents/vacation/rollback", json={"tenant": "acme", "to": "1"}).status_code == 400
    assert c.post("/v1/documents/vacation/rollback", content=b"to=1",
                  headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
    assert c.get("/v1/documents/vacation/history?tenant=globex").status_code == 404  # another tenant's: none
    assert c.get("/v1/documents/vacation?tenant=acme").json()["version"] == 2  # the plain read still answers


def test_with_auth_history_and_rollback_need_a_document_role_of_the_tenant(tmp_path: Path) -> None:
    kept(tmp_path / "db")
    c, fake = make(auth=True, lancedb_uri=str(tmp_path / "db"))
    assert c.get("/v1/documents/vacation/history", headers=bearer()).status_code == 403
    assert c.post("/v1/documents/vacation/rollback", json={"to": 1}, headers=bearer()).status_code == 403
    assert c.get("/v1/documents/vacation/history", headers=bearer(roles=("admin",))).status_code == 200
    assert c.get("/v1/documents/vacation/history", headers=bearer("globex", ("admin",), "g" * 40)).status_code == 404
    r = c.post("/v1/documents/vacation/rollback", json={"to": 1, "tenant": "globex"}, headers=bearer(roles=("admin",)))
    assert r.status_code in (400, 403) and not fake.changes  # the body names no other tenant
    r = c.post("/v1/documents/vacation/rollback", json={"to": 1}, headers=bearer(roles=("admin",)))
    assert r.status_code == 202 and fake.changes[0].tenant == "acme"
    assert fake.publishers == ["gateway:alice"]  # the verified user, kept in the document's history
