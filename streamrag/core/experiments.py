"""A/B experiments: sticky assignment of a (tenant, user) to one variant of each experiment, by a hash.

The same (tenant, user, experiment) always lands in the same variant while the experiment's variants and
shares stay the same; shares are fractions of traffic (normalised to their sum). Pure logic: the gateway
applies the chosen variant's query options and labels its metrics and feedback with it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from streamrag.core.config import Experiment, ExperimentVariant


@dataclass(frozen=True)
class Assignment:
    experiment: str
    variant: ExperimentVariant

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.variant.name}"


def bucket(tenant: str, user: str, experiment: str) -> float:
    """A point in [0, 1) fixed by (tenant, user, experiment)."""
    h = hashlib.sha256("\x00".join((tenant, user, experiment)).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def assign(experiments: Sequence[Experiment], tenant: str, user: str | None) -> Assignment | None:
    """The variant of the first experiment that applies to ``tenant`` (None: none applies)."""
    for exp in experiments:
        if exp.tenants and tenant not in exp.tenants:
            continue
        total = sum(v.share for v in exp.variants)
        point = bucket(tenant, user or "", exp.name) * total
        edge = 0.0
        for v in exp.variants:
            edge += v.share
            if point < edge:
                return Assignment(exp.name, v)
        return Assignment(exp.name, exp.variants[-1])  # float rounding at the top edge
    return None
