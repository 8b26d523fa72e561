"""Per-group deltas for `compare`: the "Forms / Tables / Invoices: baseline, ours, delta" table.

For every grouping key that each run's scores.json broke down (DocVQA question types, ChartQA origin, answer
types...), the primary metric per group label in each run and each run's delta to the base, with a paired
bootstrap interval over the samples of that group both runs scored. Which sample is in which group comes
from the base run's predictions.jsonl (its meta), read with the scorer's own labelling rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..markdown import md_cell as md
from ..markdown import md_table
from .predictions import PREDICTIONS_FILE, read_predictions
from .report import delta_cell, pct
from .scoring import group_labels
from .stats import paired_delta

SHOWN_LABELS = 20  # per key in compare.md; compare.json keeps every label the scorer reported


def group_members(run: Any, keys: Sequence[str]) -> dict[str, dict[str, list[str]]] | None:
    """key -> label -> sample ids, from the run's predictions.jsonl (in its folder, or where `vlmkit score`
    read it from); None when neither exists."""
    path = Path(run.path) / PREDICTIONS_FILE
    if not path.is_file():
        path = Path(run.summary.get("predictions_file") or path)
    if not path.is_file():
        return None
    members: dict[str, dict[str, list[str]]] = {key: defaultdict(list) for key in keys}
    for record in read_predictions(path, require_answers=False):
        for key in keys:
            for label in dict.fromkeys(group_labels(record.meta.get(key))):
                members[key][label].append(record.id)
    return members


def group_deltas(
    runs: Sequence[Any], metric: str, *, approximate: bool = False, **bootstrap: Any
) -> dict[str, dict[str, Any]]:
    """key -> label -> {"n", "scores": {run: value}, "deltas": {run: bootstrap stats}} for `metric`; a key
    maps to None when the base run's predictions (the group membership) cannot be found."""
    base = runs[0]
    keys = [
        key for key in base.summary.get("groups", {}) if all(key in run.summary.get("groups", {}) for run in runs[1:])
    ]
    members = group_members(base, keys) if keys else None
    if members is None:
        return {key: None for key in keys}  # the breakdown exists but not which sample is in which group
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        table = {}
        for label, base_row in base.summary["groups"][key].items():
            scores = {run.name: (run.summary["groups"][key].get(label) or {}).get(metric) for run in runs}
            row: dict[str, Any] = {"n": base_row.get("n"), "scores": scores, "deltas": {}}
            ids = [i for i in members[key].get(label, ()) if metric in base.samples.get(i, {})]
            for run in runs[1:]:
                common = [i for i in ids if metric in run.samples.get(i, {})]
                if not common:
                    continue
                corpus_delta = (
                    scores[run.name] - scores[base.name]
                    if approximate and None not in (scores[run.name], scores[base.name])
                    else None
                )
                row["deltas"][run.name] = paired_delta(
                    [base.samples[i][metric] for i in common],
                    [run.samples[i][metric] for i in common],
                    corpus_delta=corpus_delta,
                    **bootstrap,
                )
            table[label] = row
        out[key] = table
    return out


def groups_markdown(result: dict[str, Any]) -> list[str]:
    """One table per grouping key: label, n, each run's score and each later run's delta."""
    groups = result.get("groups") or {}
    if groups and all(table is None for table in groups.values()):
        return [
            "",
            f"(No per-group tables: the base run's {PREDICTIONS_FILE} is not there to say which sample is "
            "in which group.)",
        ]
    metric = result["metrics"][0]
    names = [run["name"] for run in result["runs"]]
    lines = []
    for key, table in groups.items():
        header = [md(key, 40), "n", *[md(name, 30) for name in names], *[f"Δ {md(name, 30)}" for name in names[1:]]]
        rows = [
            [
                md(label, 40),
                row["n"],
                *[pct(row["scores"].get(name)) for name in names],
                *[delta_cell(row["deltas"][name]) if name in row["deltas"] else "–" for name in names[1:]],
            ]
            for label, row in list(table.items())[:SHOWN_LABELS]
        ]
        lines += [
            "",
            f"**By {md(key)}** ({metric}, x100; Δ with its paired bootstrap interval on that group's samples)",
            "",
            *md_table(header, rows),
        ]
        if len(table) > SHOWN_LABELS:
            lines.append(f"\n({len(table) - SHOWN_LABELS} more {md(key)} values in compare.json)")
    return lines
