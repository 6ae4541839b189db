"""Benchmark plots (matplotlib, an optional dependency: pip install streamrag[tools])."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from streamrag.core.percentiles import percentile

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_latencies(lat: list[float], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(lat, bins=40)
    for p in (50, 95, 99):
        v = percentile(lat, p)
        ax.axvline(v, linestyle="--", color="k", linewidth=0.8)
        ax.text(v, ax.get_ylim()[1] * 0.9, f"p{p}", rotation=90, fontsize=8)
    ax.set_xlabel("round trip (ms)")
    ax.set_ylabel("queries")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(runs: list[dict[str, Any]], raw: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["processes"] for r in runs], [r["chunks_per_s"] for r in runs], marker="o", label="pipeline")
    ax.axhline(raw, linestyle="--", color="gray", label="raw encoder (1 process)")
    ax.set_xlabel("ingest worker processes")
    ax.set_ylabel("chunks/s (Kafka -> searchable)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
