"""Score prediction records for a task: overall scores, a breakdown per grouping key, latency, cost and
failure categories. Pure computation; `scorefile.score` and the runner write the results.

Per-sample metrics are averaged. Corpus metrics are computed once on everything (text tokenized once and
shared by all of them); per group, BLEU and METEOR are recomputed on the group (they are not means of
per-sample scores) while ROUGE-L, CIDEr-D and similarity average their per-sample scores (which is what
their corpus score is), so group numbers add up to the overall one.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from ..errors import VlmkitError
from ..metrics.registry import get_metric
from ..metrics.tokenizers import resolve_tokenizer, tokenize
from .failures import CATEGORIES, categorize
from .judge import extraction_counts
from .predictions import PredictionRecord
from .score_warnings import score_warnings
from .stats import percentile
from .tasks import Task

RECOMPUTE_PER_GROUP = {"bleu", "meteor"}
MAX_GROUP_VALUES = 50
DEFAULT_PRICE_PER_HOUR = 1.0


def group_labels(value: Any) -> list[str]:
    """Group labels of one meta value; lists are multi-label (DocVQA question_types)."""
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, (str, int, float)):
        return [str(value)]
    if isinstance(value, list) and all(isinstance(v, (str, int, float, bool)) for v in value):
        return [label for v in value for label in group_labels(v)]
    return []


def grouping_keys(records: Sequence[PredictionRecord], declared: Sequence[str] = ()) -> list[str]:
    """Declared keys present in meta, then every other categorical meta key (2..50 distinct values and
    fewer values than samples, so ids and free text are left out)."""
    values: dict[str, set[str]] = defaultdict(set)
    unusable: set[str] = set()
    for record in records:
        for key, value in record.meta.items():
            if key.startswith("_"):  # in-memory scoring notes (the LLM judge's readings), not data
                continue
            labels = group_labels(value)
            if not labels and value is not None:
                unusable.add(key)
            values[key].update(labels)
    keys = [k for k in declared if values.get(k)]
    for key in sorted(values):
        if key in keys or key in unusable:
            continue
        distinct = len(values[key])
        if 2 <= distinct <= MAX_GROUP_VALUES and distinct < len(records):
            keys.append(key)
    return keys


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


class _Corpus:
    """Corpus-metric computation over the scored samples, tokenizing once per tokenizer."""

    def __init__(self, task: Task, preds: list[str], refs: list[list[str]], tokenizer: str):
        self.task, self.preds, self.refs = task, preds, refs
        self.default_tokenizer = tokenizer
        self._tokens: dict[str, tuple[list[str], list[list[str]]]] = {}
        self.tokenizers_used: set[str] = set()

    def _tokenized(self, name: str) -> tuple[list[str], list[list[str]]]:
        name = resolve_tokenizer(name)
        self.tokenizers_used.add(name)
        if name not in self._tokens:
            flat = tokenize(self.preds + [r for refs in self.refs for r in refs], name)
            preds, pos, refs = flat[: len(self.preds)], len(self.preds), []
            for group in self.refs:
                refs.append(flat[pos : pos + len(group)])
                pos += len(group)
            self._tokens[name] = (preds, refs)
        return self._tokens[name]

    def run(self, metric: str, positions: Sequence[int] | None = None) -> tuple[Any, Any]:
        spec = get_metric(metric)
        options = dict(self.task.metric_options.get(metric, {}))
        if "tokenizer" in spec.options:
            preds, refs = self._tokenized(options.pop("tokenizer", self.default_tokenizer))
            options["tokenizer"] = "none"
        else:
            preds, refs = self.preds, self.refs
        if positions is not None:
            preds, refs = [preds[i] for i in positions], [refs[i] for i in positions]
        return spec.fn(preds, refs, **options)


def score_records(
    records: Sequence[PredictionRecord],
    task: Task,
    *,
    tokenizer: str = "auto",
    group_by: Sequence[str] | None = None,
    price_per_hour: float | None = DEFAULT_PRICE_PER_HOUR,
    timing: dict[str, Any] | None = None,
    max_examples: int = 3,
    token_prices: tuple[float | None, float | None] | None = None,
    judge: Any = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score records; returns (scores summary for scores.json, one row per record for sample_scores.jsonl).
    `token_prices` (USD per 1M prompt / completion tokens, an API's prices) make the cost token based."""
    answers_of = [r.answers for r in records]
    processed = [task.postprocess_answer(r.prediction) for r in records]
    scored = [i for i, r in enumerate(records) if r.answers]
    if not scored:
        raise VlmkitError(
            "no prediction has reference answers, so there is nothing to score "
            "(for a test split, write a submission file instead)"
        )
    preds = [processed[i] for i in scored]
    refs = [answers_of[i] for i in scored]
    # multiple-choice / yes-no: how many answers the rules read, and the optional LLM judge for the rest
    extraction = extraction_counts([records[i] for i in scored], preds, task.metrics, judge)

    per_sample: dict[str, list[float]] = {}
    overall: dict[str, float] = {}
    corpus = _Corpus(task, preds, refs, tokenizer)
    for metric in task.metrics:
        spec = get_metric(metric)
        if spec.kind == "sample":
            values = [float(spec.fn(p, a)) for p, a in zip(preds, refs)]
            per_sample[metric], overall[metric] = values, _mean(values)
            continue
        if spec.kind == "record":  # reads the sample's meta too (multiple-choice options)
            values = [float(spec.fn(p, a, records[i].meta)) for p, a, i in zip(preds, refs, scored)]
            per_sample[metric], overall[metric] = values, _mean(values)
            continue
        score, scores = corpus.run(metric)
        if len(spec.score_keys) > 1:  # BLEU: one value and one per-sample list per n-gram order
            for key, value, values in zip(spec.score_keys, score, scores):
                overall[key], per_sample[key] = float(value), [float(v) for v in values]
        else:
            overall[metric], per_sample[metric] = float(score), [float(v) for v in scores]

    keys = list(group_by) if group_by is not None else grouping_keys([records[i] for i in scored], task.group_by)
    groups = _group_scores(records, scored, keys, task, per_sample, corpus)
    warnings = score_warnings(task, refs, [records[i].meta for i in scored], group_by)

    failures, sample_failure = _failures(records, processed, scored, task, per_sample, max_examples)
    rows = []
    position = {idx: n for n, idx in enumerate(scored)}
    for i, record in enumerate(records):
        n = position.get(i)
        rows.append(
            {
                "id": record.id,
                "scores": None if n is None else {k: per_sample[k][n] for k in per_sample},
                "failure": sample_failure.get(i),
            }
        )

    summary = {
        "task": task.name,
        "warnings": warnings,  # scores that are silently wrong for this data (score_warnings)
        "metrics": list(per_sample),
        "primary": task.primary,
        "counts": {
            "predictions": len(records),
            "scored": len(scored),
            "errors": sum(1 for r in records if r.error),
            "without_answers": len(records) - len(scored),
        },
        "overall": overall,
        "groups": groups,
        "latency": _latency(records),
        "throughput": _throughput(records, timing),
        "failures": failures,
        "tokenizer": sorted(corpus.tokenizers_used)[0] if corpus.tokenizers_used else None,
        "postprocess": list(task.postprocess),
    }
    if token_prices is not None and any(price is not None for price in token_prices):
        summary["cost"] = token_cost(records, *token_prices)
    else:
        summary["cost"] = _cost(summary["throughput"], price_per_hour)
    if extraction is not None:
        summary["answer_extraction"] = extraction
    if task.suite:  # the benchmark's own aggregate scores (circular groups, POPE F1, MME totals)
        from .tasks.suites import suite_scores

        summary["suite"] = suite_scores(task.suite, [records[i] for i in scored], [processed[i] for i in scored])
    return summary, rows


def _group_scores(
    records: Sequence[PredictionRecord],
    scored: list[int],
    keys: list[str],
    task: Task,
    per_sample: dict[str, list[float]],
    corpus: _Corpus,
) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    for key in keys:
        members: dict[str, list[int]] = defaultdict(list)
        for n, i in enumerate(scored):
            for label in dict.fromkeys(group_labels(records[i].meta.get(key))):
                members[label].append(n)
        table = {}
        for label in sorted(members, key=lambda lb: (-len(members[lb]), lb))[:MAX_GROUP_VALUES]:
            positions = members[label]
            row: dict[str, Any] = {"n": len(positions)}
            for metric in task.metrics:
                spec = get_metric(metric)
                if metric in RECOMPUTE_PER_GROUP:
                    score, _ = corpus.run(metric, positions)
                    values = score if isinstance(score, list) else [score]
                    row.update({k: float(v) for k, v in zip(spec.score_keys, values)})
                else:
                    row.update({k: _mean([per_sample[k][p] for p in positions]) for k in spec.score_keys})
            table[label] = row
        groups[key] = table
    return groups


def _failures(
    records: Sequence[PredictionRecord],
    processed: list[str],
    scored: list[int],
    task: Task,
    per_sample: dict[str, list[float]],
    max_examples: int,
) -> tuple[dict[str, Any] | None, dict[int, str]]:
    if task.failure_threshold is None:
        return None, {}
    primary = per_sample[task.primary]
    counts: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    assigned: dict[int, str] = {}
    for n, i in enumerate(scored):
        if primary[n] >= task.failure_threshold:
            continue
        record = records[i]
        category = categorize(processed[i], record.answers, error=record.error)
        assigned[i] = category
        counts[category] += 1
        if len(examples[category]) < max_examples:
            examples[category].append(
                {
                    "id": record.id,
                    "question": record.question,
                    "prediction": processed[i],
                    "answers": record.answers[:5],
                    "score": primary[n],
                    **({"error": record.error} if record.error else {}),
                }
            )
    return {
        "threshold": task.failure_threshold,
        "wrong": sum(counts.values()),
        "scored": len(scored),
        "counts": {c: counts[c] for c in CATEGORIES if counts[c]},
        "examples": dict(examples),
    }, assigned


def _latency(records: Sequence[PredictionRecord]) -> dict[str, Any]:
    values = [r.latency_s for r in records if r.latency_s is not None]
    return {
        "n": len(values),
        "p50_s": percentile(values, 50),
        "p95_s": percentile(values, 95),
        "mean_s": _mean(values) if values else None,
    }


def _throughput(records: Sequence[PredictionRecord], timing: dict[str, Any] | None) -> dict[str, Any]:
    if timing and timing.get("model_s") and timing.get("samples"):
        return {
            "samples_per_s": timing["samples"] / timing["model_s"],
            "source": "measured model time",
            "model_s": timing["model_s"],
            "samples": timing["samples"],
        }
    values = [r.latency_s for r in records if r.latency_s is not None]
    total = sum(values)
    if not values or total <= 0:
        return {"samples_per_s": None, "source": "unknown (no latency_s)"}
    return {"samples_per_s": len(values) / total, "source": "estimated from latency_s (one sample at a time)"}


def _cost(throughput: dict[str, Any], price_per_hour: float | None) -> dict[str, Any]:
    rate = throughput.get("samples_per_s")
    if price_per_hour is None or not rate or not math.isfinite(rate):
        return {"usd_per_hour": price_per_hour, "usd_per_1k_images": None}
    return {"usd_per_hour": price_per_hour, "usd_per_1k_images": price_per_hour * (1000.0 / rate) / 3600.0}


def token_cost(records: Sequence[PredictionRecord], price_input: float | None, price_output: float | None) -> dict:
    """Cost from the endpoint's own token counts (rows without counts, e.g. failed ones, cost nothing):
    usd_per_1k_images = usd_total / answered samples * 1000."""
    prompt = sum(r.usage.get("prompt_tokens", 0) for r in records)
    completion = sum(r.usage.get("completion_tokens", 0) for r in records)
    usd_total = (prompt * (price_input or 0.0) + completion * (price_output or 0.0)) / 1e6
    answered = sum(1 for r in records if not r.error)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "usd_total": usd_total,
        "usd_per_1k_images": usd_total / answered * 1000 if answered else None,
        "price_input": price_input,
        "price_output": price_output,
    }


def token_prices(manifest: dict[str, Any] | None) -> tuple[float | None, float | None] | None:
    """The per-1M-token prices a remote engine's run was given (recorded in its manifest), or None."""
    engine = (manifest or {}).get("engine") or {}
    prices = (engine.get("price_input"), engine.get("price_output"))
    return prices if any(p is not None for p in prices) else None
