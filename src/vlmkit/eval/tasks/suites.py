"""A benchmark's own aggregate scores, computed the way its reference script does; they go into
scores.json under "suite" (and report.md) next to the per-sample metric means.

- mmbench: circular evaluation. Rows whose index shares `index % 1_000_000` are rotations of one
  question (the row with index < 1_000_000 is the original); a question counts only when every rotation
  is answered right. Also the plain ("vanilla") accuracy on the original rows. Both per category.
- pope: accuracy, precision, recall and F1 of "yes" (an answer that is neither counts as "no" for
  precision / recall, and wrong for accuracy), and the share of "yes" answers; per split (adversarial /
  popular / random: `category`, comma-separated where one question is in several; such a question counts
  once per split in the overall numbers too, as VLMEvalKit's POPE_rating does).
- mme: per subtask, accuracy x100 plus acc+ x100 (an image counts when both its questions are right);
  perception and cognition are the sums over their subtasks (MME's calculation script).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from ...metrics.choice import selected_option, selected_yes_no, yes_no_label
from ..predictions import PredictionRecord

CIRCULAR_MOD = 1_000_000
MME_PERCEPTION = (
    "existence",
    "count",
    "position",
    "color",
    "posters",
    "celebrity",
    "scene",
    "landmark",
    "artwork",
    "OCR",
)
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
CATEGORY_KEYS = ("category", "l2-category")


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def _labels(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if value is None or value == "":
        return []
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _index(record: PredictionRecord) -> int | None:
    value = record.meta.get("index", record.id)
    try:
        return int(str(value))
    except ValueError:
        return None


def mmbench(records: Sequence[PredictionRecord], predictions: Sequence[str]) -> dict[str, Any]:
    hits = [
        bool(r.answers) and selected_option(p, r.meta) == r.answers[0].strip() for r, p in zip(records, predictions)
    ]
    groups: dict[int, list[bool]] = defaultdict(list)
    main: dict[int, int] = {}
    for n, record in enumerate(records):
        index = _index(record)
        if index is None:
            continue
        groups[index % CIRCULAR_MOD].append(hits[n])
        if index < CIRCULAR_MOD:
            main[index] = n
    circular = {g: all(groups[g]) for g in main}  # groups without their original row are not counted
    overall = {
        "circular_accuracy": _mean([float(v) for v in circular.values()]),
        "vanilla_accuracy": _mean([float(hits[n]) for n in main.values()]),
        "questions": len(main),
        "rows": len(records),
    }
    tables: dict[str, Any] = {}
    for key in CATEGORY_KEYS:
        by_label: dict[str, list[int]] = defaultdict(list)
        for g, n in main.items():
            label = records[n].meta.get(key, records[n].meta.get(key.replace("-", "_")))
            if label not in (None, ""):
                by_label[str(label)].append(g)
        if by_label:
            tables[key] = {
                label: {
                    "n": len(gs),
                    "circular_accuracy": _mean([float(circular[g]) for g in gs]),
                    "vanilla_accuracy": _mean([float(hits[main[g]]) for g in gs]),
                }
                for label, gs in sorted(by_label.items())
            }
    return {"overall": overall, "tables": tables}


def _pope_stats(golds: list[str | None], preds: list[str | None]) -> dict[str, Any]:
    tp = sum(g == "Yes" and p == "Yes" for g, p in zip(golds, preds))
    fp = sum(g == "No" and p == "Yes" for g, p in zip(golds, preds))
    fn = sum(g == "Yes" and p != "Yes" for g, p in zip(golds, preds))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "n": len(golds),
        "accuracy": _mean([float(g is not None and g == p) for g, p in zip(golds, preds)]),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "yes_ratio": _mean([float(p == "Yes") for p in preds]),
    }


def pope(records: Sequence[PredictionRecord], predictions: Sequence[str]) -> dict[str, Any]:
    golds = [yes_no_label(r.answers[0]) if r.answers else None for r in records]
    preds = [selected_yes_no(p, r.meta) for r, p in zip(records, predictions)]
    splits: dict[str, list[int]] = defaultdict(list)
    expanded: list[int] = []  # VLMEvalKit explodes "adversarial,popular" into one row per split, overall too
    for n, record in enumerate(records):
        labels = _labels(record.meta.get("category", record.meta.get("split")))
        for label in labels:
            splits[label].append(n)
        expanded += [n] * max(1, len(labels))
    table = {label: _pope_stats([golds[n] for n in ns], [preds[n] for n in ns]) for label, ns in sorted(splits.items())}
    overall = _pope_stats([golds[n] for n in expanded], [preds[n] for n in expanded])
    return {"overall": overall, "tables": {"split": table} if table else {}}


def _image_key(record: PredictionRecord) -> str:
    for key in ("image_key", "image_path", "question_id"):
        if record.meta.get(key) not in (None, ""):
            return str(record.meta[key])
    return record.id


def mme(records: Sequence[PredictionRecord], predictions: Sequence[str]) -> dict[str, Any]:
    per_category: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record, prediction in zip(records, predictions):
        gold = yes_no_label(record.answers[0]) if record.answers else None
        hit = float(gold is not None and selected_yes_no(prediction, record.meta) == gold)
        per_category[str(record.meta.get("category", "unknown"))][_image_key(record)].append(hit)
    table = {}
    for category, images in sorted(per_category.items()):
        acc = 100 * _mean([h for hits in images.values() for h in hits])
        acc_plus = 100 * _mean([float(all(hits)) for hits in images.values()])
        table[category] = {
            "n": sum(map(len, images.values())),
            "acc": acc,
            "acc_plus": acc_plus,
            "score": acc + acc_plus,
        }
    overall = {
        "perception": sum(table[c]["score"] for c in MME_PERCEPTION if c in table),
        "cognition": sum(table[c]["score"] for c in MME_COGNITION if c in table),
        "perception_subtasks": sum(c in table for c in MME_PERCEPTION),
        "cognition_subtasks": sum(c in table for c in MME_COGNITION),
    }
    return {"overall": overall, "tables": {"category": table}}


SUITES: dict[str, Callable[[Sequence[PredictionRecord], Sequence[str]], dict[str, Any]]] = {
    "mmbench": mmbench,
    "pope": pope,
    "mme": mme,
}


def suite_scores(name: str, records: Sequence[PredictionRecord], predictions: Sequence[str]) -> dict[str, Any]:
    """{"name", "overall": {score: value}, "tables": {key: {label: {...}}}} for the scored records."""
    return {"name": name, **SUITES[name](records, predictions)}
