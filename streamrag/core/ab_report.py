"""The A/B report (pure): an experiment's variants compared on what their users saw — feedback, ``no_answer``
rate, fallbacks, latency — each against the first variant (the control), with a significance test.

Rates are compared with Fisher's exact test (2x2: this variant vs the control), latency with the
Mann-Whitney U test (no normality assumed); p-values are Holm-adjusted over all comparisons of the report.
A comparison with too few observations says so instead of giving a p-value."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from streamrag.core.percentiles import percentile
from streamrag.schemas.models import AuditRecord, Feedback

MIN_N = 30  # observations per variant below which a comparison is "not enough data"
ALPHA = 0.05


@dataclass
class VariantFigures:
    variant: str
    answers: int = 0
    no_answer: int = 0
    fallbacks: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    ratings: int = 0
    positive: int = 0

    def rate(self, what: str) -> float | None:
        n = self.ratings if what == "positive" else self.answers
        return getattr(self, what) / n if n else None

    def summary(self) -> dict[str, object]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else None
        return {
            "variant": self.variant, "answers": self.answers, "ratings": self.ratings,
            "positive_rate": self.rate("positive"), "no_answer_rate": self.rate("no_answer"),
            "fallback_rate": self.rate("fallbacks"), "error_rate": self.rate("errors"),
            "latency_p50_ms": None if lat is None else percentile(lat, 50),
            "latency_p95_ms": None if lat is None else percentile(lat, 95),
        }


@dataclass(frozen=True)
class Comparison:
    metric: str
    variant: str
    control: str
    effect: float | None  # variant minus control (rates), or the ratio of medians (latency)
    p_value: float | None  # Holm-adjusted; None: not enough data
    significant: bool
    note: str = ""


def positive(f: Feedback) -> bool:
    """Thumbs up, or 4 or 5 stars."""
    return f.rating == 1 if f.scale == "thumbs" else f.rating >= 4


def figures(experiment: str, audits: Iterable[AuditRecord], feedback: Iterable[Feedback],
            variants: Sequence[str] = ()) -> dict[str, VariantFigures]:
    """Per variant (``experiment/variant`` labels), in the order of ``variants`` then of first appearance."""
    prefix = f"{experiment}/"
    out: dict[str, VariantFigures] = {v: VariantFigures(v) for v in variants}
    for a in audits:
        if not a.variant.startswith(prefix):
            continue
        f = out.setdefault(a.variant, VariantFigures(a.variant))
        f.answers += 1
        f.no_answer += a.status == "no_answer"
        f.errors += a.status == "error"
        f.fallbacks += bool(a.fallback)
        if a.status != "error" and not a.cached:
            f.latencies_ms.append(a.latency_ms)
    for fb in feedback:
        if fb.variant.startswith(prefix):
            f = out.setdefault(fb.variant, VariantFigures(fb.variant))
            f.ratings += 1
            f.positive += positive(fb)
    return out


def _rate_test(metric: str, v: VariantFigures, c: VariantFigures) -> tuple[float | None, float | None, str]:
    n_v, n_c = (v.ratings, c.ratings) if metric == "positive" else (v.answers, c.answers)
    if min(n_v, n_c) < MIN_N:
        return None, None, f"not enough data (n={n_v} vs {n_c}; {MIN_N} each needed)"
    k_v, k_c = getattr(v, metric), getattr(c, metric)
    _, p = stats.fisher_exact([[k_v, n_v - k_v], [k_c, n_c - k_c]])
    return k_v / n_v - k_c / n_c, float(p), ""


def _latency_test(v: VariantFigures, c: VariantFigures) -> tuple[float | None, float | None, str]:
    a, b = v.latencies_ms, c.latencies_ms
    if min(len(a), len(b)) < MIN_N:
        return None, None, f"not enough data (n={len(a)} vs {len(b)} timed answers; {MIN_N} each needed)"
    _, p = stats.mannwhitneyu(a, b, alternative="two-sided")
    med_b = float(np.median(b))
    return (float(np.median(a)) / med_b if med_b else None), float(p), ""


METRICS = ("positive", "no_answer", "fallbacks", "latency")


def compare(figs: dict[str, VariantFigures]) -> list[Comparison]:
    """Every variant against the first one, on every metric; p-values Holm-adjusted together."""
    names = list(figs)
    if len(names) < 2:
        return []
    control = figs[names[0]]
    raw: list[tuple[str, str, float | None, float | None, str]] = []
    for name in names[1:]:
        v = figs[name]
        for metric in METRICS:
            effect, p, note = _latency_test(v, control) if metric == "latency" else _rate_test(metric, v, control)
            raw.append((metric, name, effect, p, note))
    tested = [i for i, r in enumerate(raw) if r[3] is not None]
    adjusted: dict[int, float] = {}
    if tested:
        ps = np.asarray([raw[i][3] for i in tested], dtype=float)
        adjusted = dict(zip(tested, _holm(ps), strict=True))
    return [Comparison(m, name, control.variant, effect, adjusted.get(i), adjusted.get(i, 1.0) < ALPHA, note)
            for i, (m, name, effect, _p, note) in enumerate(raw)]


def _holm(p: np.ndarray) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    order = np.argsort(p)
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return [float(x) for x in adj]


def report(experiment: str, figs: dict[str, VariantFigures]) -> dict[str, object]:
    comps = compare(figs)
    enough = any(c.p_value is not None for c in comps)
    return {
        "experiment": experiment,
        "variants": [f.summary() for f in figs.values()],
        "comparisons": [asdict(c) for c in comps],
        "verdict": ("no data for this experiment" if not figs else
                    "one variant seen: nothing to compare" if len(figs) < 2 else
                    "not enough data yet for any test" if not enough else
                    "; ".join(f"{c.variant} differs from {c.control} on {c.metric} (p={c.p_value:.3g})"
                              for c in comps if c.significant) or "no significant difference"),
    }
