"""PNG charts for reports (matplotlib, Agg backend; imported only when a plot is drawn)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..plotting import pyplot, save_figure


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "group"


def group_bars(key: str, table: dict[str, dict[str, Any]], metric: str, path: Path) -> Path:
    """Horizontal bars of one score per group value, with the sample count on each bar."""
    plt = pyplot()
    labels = list(table)[:30]
    values = [100 * table[label][metric] for label in labels]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.2))
    bars = ax.barh(range(len(labels)), values, color="#4C72B0")
    ax.set_yticks(range(len(labels)), [label[:40] for label in labels])
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} (x100)")
    ax.set_title(f"{metric} by {key}")
    for bar, label in zip(bars, labels):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" n={table[label]['n']}", va="center", fontsize=8)
    ax.set_xlim(0, max(values + [100]) * 1.15)
    return save_figure(fig, path)


def failure_bars(counts: dict[str, int], labels: dict[str, str], path: Path) -> Path:
    plt = pyplot()
    names = list(counts)
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1.2))
    ax.barh(range(len(names)), [counts[n] for n in names], color="#C44E52")
    ax.set_yticks(range(len(names)), [labels.get(n, n) for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("wrong answers")
    ax.set_title("failure categories")
    return save_figure(fig, path)


def latency_hist(latencies: Sequence[float], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist([1000 * v for v in latencies], bins=min(40, max(5, len(latencies) // 5)), color="#55A868")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("samples")
    ax.set_title("latency per sample")
    return save_figure(fig, path)
