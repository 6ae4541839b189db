"""A/B experiments: sticky assignment near the configured shares, and the gateway applying a variant."""

from __future__ import annotations

from collections import Counter

from streamrag.core.config import Experiment
from streamrag.core.experiments import assign
from tests.unit.test_gateway import make

EXP = Experiment.model_validate({"name": "fusion1", "variants": [
    {"name": "control", "share": 0.7}, {"name": "rrf", "share": 0.2, "fusion": "rrf"},
    {"name": "dense", "share": 0.1, "fusion": "dense", "alpha": 1.0}]})


def test_assignment_is_sticky_and_near_the_shares_over_10000_users() -> None:
    users = [f"user{i}" for i in range(10_000)]
    first = [assign([EXP], "acme", u) for u in users]
    again = [assign([EXP], "acme", u) for u in users]
    assert [a.label for a in first if a] == [a.label for a in again if a]  # sticky
    counts = Counter(a.variant.name for a in first if a)
    assert abs(counts["control"] / 10_000 - 0.7) < 0.02
    assert abs(counts["rrf"] / 10_000 - 0.2) < 0.02
    assert abs(counts["dense"] / 10_000 - 0.1) < 0.02


def test_experiments_apply_to_their_tenants_only_and_per_experiment() -> None:
    only_globex = EXP.model_copy(update={"tenants": ["globex"]})
    assert assign([only_globex], "acme", "u1") is None and assign([only_globex], "globex", "u1") is not None
    other = EXP.model_copy(update={"name": "fusion2"})
    names = [(assign([EXP], "acme", f"u{i}").variant.name, assign([other], "acme", f"u{i}").variant.name)  # type: ignore[union-attr]
             for i in range(200)]
    assert any(a != b for a, b in names)  # each experiment splits users on its own


def test_the_gateway_sends_the_variants_options_and_names_it() -> None:
    c, fake = make(gateway_experiments=[EXP.model_dump()])
    seen: dict[str, str] = {}
    for i in range(60):
        r = c.post("/v1/query", json={"tenant": "acme", "text": "q", "principal": {"user": f"u{i}"}})
        variant = r.headers["X-Streamrag-Variant"]
        seen[variant] = fake.queries[-1].options.fusion or "default"
        assert variant == assign([EXP], "acme", f"u{i}").label  # type: ignore[union-attr]
    assert seen == {"fusion1/control": "default", "fusion1/rrf": "rrf", "fusion1/dense": "dense"}
    r = c.post("/v1/feedback", json={"tenant": "acme", "user": "u7", "query_id": "q", "rating": 1})
    assert r.status_code == 202 and fake.feedback[-1].variant == assign([EXP], "acme", "u7").label  # type: ignore[union-attr]
