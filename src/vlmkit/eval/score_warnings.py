"""Warnings for scores that are silently wrong for the data, printed with the summary and written to report.md.

- VQA accuracy (official formula, both `vqa_accuracy` and `vqa_accuracy_lmms`) gives an answer that matches n of
  the references min(1, (n-1)/3) on average over the leave-one-out subsets: a sample needs 10 human answers (as in
  VQA v2, VizWiz, TextVQA) to be scored as published, and an exactly right answer to a single-reference sample
  (a LLaVA or ShareGPT import) scores 0.
- A `group_by` key the task (or --group-by) asks for but no sample's meta holds gives no breakdown at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

VQA_ACCURACY_METRICS = ("vqa_accuracy", "vqa_accuracy_lmms")
FULL_REFERENCES = 10  # human answers per question in VQA v2 / VizWiz / TextVQA
FULL_CREDIT_REFERENCES = 4  # fewer references than this and even an exact match cannot score 1


def score_warnings(
    task: Any,
    references: Sequence[Sequence[str]],
    metas: Sequence[dict[str, Any]],
    group_by: Sequence[str] | None = None,
) -> list[str]:
    """The warnings for scoring `references` (one list per scored sample) with `task`; `metas` are the scored
    samples' meta, `group_by` the keys given with --group-by (None: the task's own)."""
    warnings = []
    vqa_metrics = [m for m in task.metrics if m in VQA_ACCURACY_METRICS]
    short = sum(1 for refs in references if len(refs) < FULL_REFERENCES)
    if vqa_metrics and short:
        single = sum(1 for refs in references if len(refs) == 1)
        capped = sum(1 for refs in references if len(refs) < FULL_CREDIT_REFERENCES)
        warnings.append(
            f"{'/'.join(vqa_metrics)}: {short} of {len(references)} scored samples have fewer than "
            f"{FULL_REFERENCES} reference answers ({capped} fewer than {FULL_CREDIT_REFERENCES}, {single} only one). "
            "The official VQA accuracy (vqa_accuracy and vqa_accuracy_lmms alike) gives a matching answer "
            "min(1, (matches-1)/3), so an exactly right answer to a single reference scores 0. For data with one "
            "or few answers per question (e.g. a LLaVA or ShareGPT import) score with --metric exact_match "
            "(or anls / token_f1)."
        )
    if group_by is not None:
        warnings += missing_group_keys(group_by, metas, source="--group-by")
    elif task.group_by and not _builtin_group_by(task):
        warnings += missing_group_keys(task.group_by, metas, source=f"task {task.name}: group_by key")
    return warnings


def missing_group_keys(declared: Sequence[str], metas: Sequence[dict[str, Any]], *, source: str) -> list[str]:
    """A warning for each key of `declared` that no sample's meta holds."""
    present = {key for meta in metas for key, value in meta.items() if value is not None}
    seen = sorted(present)
    shown = (", ".join(seen[:12]) + (", …" if len(seen) > 12 else "")) if seen else "none"
    return [
        f"{source} '{key}' is in no sample's meta, so there is no breakdown by it (meta keys found: {shown})"
        for key in declared
        if key not in present
    ]


def _builtin_group_by(task: Any) -> bool:
    """A built-in task's group_by lists the names different importers give one field (docvqa: question_types,
    question_type, ...): most are absent from any one dataset by design, so they are not warned about."""
    from .tasks.builtin import BUILTIN_TASKS

    return any(t.name == task.name and t.group_by == task.group_by for t in BUILTIN_TASKS)
