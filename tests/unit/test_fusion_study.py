"""Issue #20's fusion study variants (tools/fusion_study.py): what each one combines."""

from __future__ import annotations

from streamrag.core.evidence import Evidence
from streamrag.core.ports import Hit
from streamrag.tools.evaluate import parse_configs
from streamrag.tools.fusion_study import VARIANTS, FusionVariant, normalised, study_fuse


def hit(doc: str, chunk: int, score: float) -> Hit:
    return Hit(f"{doc}:{chunk}", doc, doc, chunk, 1, "", "", score)


def test_maxp_lets_a_document_combine_the_best_chunk_of_each_list() -> None:
    # dense finds a:0, BM25 finds a:1; b:0 is in both lists, a little below each list's best
    dense = [hit("a", 0, 0.9), hit("b", 0, 0.8), hit("z", 0, 0.1)]
    bm25 = [hit("a", 1, 9.0), hit("b", 0, 8.0), hit("z", 1, 1.0)]
    half = FusionVariant("minmax", "half")
    assert study_fuse(half, dense, bm25, None)[0].hit.doc_id == "b"  # per chunk: a's evidence is split in two
    fused = study_fuse(FusionVariant("minmax", "half", "maxp"), dense, bm25, None)
    assert fused[0].hit.doc_id == "a" and abs(fused[0].score - 1.0) < 1e-3


def test_zscore_gives_a_missing_chunk_the_lists_lowest_value_and_evidence_sets_the_weight() -> None:
    scores, missing = normalised([hit("a", 0, 3.0), hit("b", 0, 1.0)], "zscore")
    assert scores == {"a:0": 1.0, "b:0": -1.0} and missing == -1.0
    dense = [hit("a", 0, 0.9), hit("b", 0, 0.1)]
    bm25 = [hit("b", 0, 9.0), hit("a", 0, 1.0)]
    ev = Evidence(dense=0.8, bm25=0.2, samples=200)  # dense weight 0.8: dense's order wins
    assert [r.hit.doc_id for r in study_fuse(FusionVariant("minmax", "evidence"), dense, bm25, ev)] == ["a", "b"]
    assert [r.hit.doc_id for r in study_fuse(FusionVariant("minmax", "evidence"), bm25, dense, ev)] == ["b", "a"]


def test_every_study_variant_is_an_eval_config_with_its_stress_tests() -> None:
    names = [f"study-{v}{tag}" for v in VARIANTS for tag in ("", "@bm25-noise", "@dense-noise")]
    configs = parse_configs(names)
    assert [c.study for c in configs[:3]] == ["zscore"] * 3 and configs[1].bm25_noise and configs[2].dense_noise
