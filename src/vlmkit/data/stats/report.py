"""Writing and showing what compute.py measured: stats.json, stats.md, PNG plots, the terminal table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...io import atomic_write_text, write_json
from ...markdown import md_cell, md_table
from .compute import COVERAGE_K


def write_stats(stats: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """stats.json, stats.md and the PNG plots in OUT_DIR; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json(out / "stats.json", public(stats))]
    paths += _plots(stats, out)
    paths.append(atomic_write_text(out / "stats.md", markdown(stats, [p.name for p in paths if p.suffix == ".png"])))
    return paths


def public(stats: dict[str, Any]) -> dict[str, Any]:
    """The stats without the raw arrays kept for plotting."""
    if isinstance(stats, dict):
        return {k: public(v) for k, v in stats.items() if not str(k).startswith("_")}
    return stats


def headline(stats: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows of the terminal summary and the top of stats.md."""
    lengths = stats["lengths"]
    cov = stats["answer_coverage"]

    def length(name: str) -> str:
        parts = [
            f"{lengths[f'{name}_{u}']['mean']:.1f} {u}"
            for u in ("chars", "words", "tokens")
            if f"{name}_{u}" in lengths
        ]
        return ", ".join(parts) or "-"

    per_image = stats["qa_pairs_per_image"]
    rows = [
        ("samples", f"{stats['samples']:,}"),
        ("images", f"{stats['images']:,}" + (f" (+{stats['videos']:,} videos)" if stats["videos"] else "")),
        (
            "QA pairs",
            f"{stats['qa_pairs']:,}"
            + (f" ({stats['unanswered_questions']:,} without answer)" if stats["unanswered_questions"] else ""),
        ),
        (
            "QA pairs per image",
            f"mean {per_image.get('mean', 0):.2f}, median {per_image.get('median', 0):g}, "
            f"max {per_image.get('max', 0):g}"
            if per_image.get("count")
            else "-",
        ),
        ("question length (mean)", length("question")),
        ("answer length (mean)", length("answer")),
        ("unique answers", f"{stats['unique_answers']:,}"),
        ("coverage top-100/500/1k/5k", " / ".join(f"{cov[str(k)]:.1%}" for k in COVERAGE_K)),
        ("yes/no answers", f"{stats['yes_no_answer_share']:.1%}"),
    ]
    sizes = stats.get("image_sizes")
    if sizes and sizes.get("count"):
        common = sizes["most_common"][0]["size"] if sizes["most_common"] else "-"
        rows.append(
            ("image size", f"median {sizes['width']['median']:g}x{sizes['height']['median']:g}, most common {common}")
        )
    return rows


def markdown(stats: dict[str, Any], plots: list[str]) -> str:
    lines = [f"# Dataset statistics: {stats.get('dataset', '')}", "", *md_table(["metric", "value"], headline(stats))]
    lines += ["", "## Can a classification head work?", "", stats["classification_verdict"], ""]
    lines += md_table(
        ["top-K answers", "coverage"], [(f"{int(k):,}", f"{v:.2%}") for k, v in stats["answer_coverage"].items()]
    )
    lines += ["", "## Top answers", ""]
    lines += md_table(
        ["answer", "count", "share"],
        [(_cell(a["answer"]), f"{a['count']:,}", f"{a['share']:.2%}") for a in stats["top_answers"]],
    )
    lines += ["", "## Question types", ""]
    lines += md_table(
        ["type", "count", "share"],
        [(t["type"], f"{t['count']:,}", f"{t['share']:.2%}") for t in stats["question_types"]],
    )
    lines += ["", "## Leading words", ""]
    lines += md_table(["words", "count"], [(_cell(w["words"]), f"{w['count']:,}") for w in stats["leading_words"]])
    lines += ["", "## Lengths", ""]
    lines += md_table(
        ["", "mean", "median", "p90", "max"],
        [
            (name, f"{d['mean']:.1f}", f"{d['median']:g}", f"{d['p90']:g}", f"{d['max']:g}")
            for name, d in stats["lengths"].items()
        ],
    )
    if stats.get("tokenizer"):
        lines += ["", f"Tokens counted with {stats['tokenizer']}."]
    for key, counts in stats.get("meta", {}).items():
        lines += ["", f"## meta.{key}", ""]
        lines += md_table(["value", "count"], [(_cell(v), f"{c:,}") for v, c in counts.items()])
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return md_cell(text, limit=120, empty="(empty)")


def _plots(stats: dict[str, Any], out: Path) -> list[Path]:
    from ...plotting import pyplot, save_figure

    plt = pyplot()
    written = []

    def save(fig: Any, name: str) -> None:
        written.append(save_figure(fig, out / name, dpi=100))

    per_image = stats["qa_pairs_per_image"].get("histogram", {})
    if per_image:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar([int(k) for k in per_image], list(per_image.values()), color="#4472c4")
        ax.set(title="QA pairs per image", xlabel="QA pairs", ylabel="images")
        save(fig, "qa_per_image.png")
    raw = stats["_lengths"]
    for side in ("question", "answer"):
        units = [u for u in ("chars", "words", "tokens") if len(raw[f"{side}_{u}"])]
        if not units:
            continue
        fig, axes = plt.subplots(1, len(units), figsize=(4 * len(units), 3.2), squeeze=False)
        for ax, unit in zip(axes[0], units):
            ax.hist(list(raw[f"{side}_{unit}"]), bins=40, color="#70ad47")
            ax.set(title=f"{side} length", xlabel=unit, ylabel="count")
        save(fig, f"{side}_lengths.png")
    curve = stats["coverage_curve"]
    if curve:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([k for k, _ in curve], [c for _, c in curve], color="#c00000")
        for k in COVERAGE_K:
            ax.axvline(k, color="grey", lw=0.5, ls=":")
        ax.set(
            xscale="log",
            ylim=(0, 1.02),
            title="Answer-vocabulary coverage",
            xlabel="top-K answers",
            ylabel="questions covered",
        )
        save(fig, "answer_coverage.png")
    types = stats["question_types"]
    if types:
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(types) + 1))
        ax.barh([t["type"] for t in types][::-1], [t["count"] for t in types][::-1], color="#ffc000")
        ax.set(title="Question types", xlabel="questions")
        save(fig, "question_types.png")
    sizes = stats.get("image_sizes") or {}
    if sizes.get("count"):
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(list(sizes["_widths"]), list(sizes["_heights"]), s=6, alpha=0.4)
        ax.set(title="Image sizes", xlabel="width (px)", ylabel="height (px)")
        save(fig, "image_sizes.png")
    return written


def summary_table(stats: dict[str, Any]) -> Any:
    """A rich Table for the terminal."""
    from rich.table import Table

    table = Table(title=f"vlmkit data stats: {stats.get('dataset', '')}", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value")
    for key, value in headline(stats):
        table.add_row(key, value)
    table.add_row("verdict", stats["classification_verdict"])
    return table
