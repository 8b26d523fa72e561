"""Score an existing predictions file (from vlmkit or any other tool) and write the result files:

scores.json          summary (overall, groups, latency, cost, failures)
sample_scores.jsonl  one line per prediction: id, per-metric scores, failure category (used by compare)
report.md + plots/   the human-readable report
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import VlmkitError
from ..io import iter_jsonl, write_json, write_jsonl
from .manifest import MANIFEST_FILE
from .predictions import PREDICTIONS_FILE, PredictionRecord, read_predictions
from .report import write_report
from .scoring import DEFAULT_PRICE_PER_HOUR, score_records, token_prices
from .submission import write_submission
from .tasks import Task, get_task

SCORES_FILE = "scores.json"
SAMPLE_SCORES_FILE = "sample_scores.jsonl"
TIMING_FILE = "timing.jsonl"


def resolve_task(task: str | Task | None, metrics: Sequence[str] | None = None) -> Task:
    """A task by name/path, optionally with its metrics replaced; or an ad-hoc task from metric names."""
    if task is None:
        if not metrics:
            raise VlmkitError("give a task (--task) or at least one metric (--metric)")
        return Task(name="custom", metrics=tuple(metrics))
    resolved = get_task(task)
    if metrics:
        resolved = dataclasses.replace(
            resolved,
            metrics=tuple(metrics),
            metric_options={k: v for k, v in resolved.metric_options.items() if k in metrics},
        )
    return resolved


def read_timing(run_dir: Path) -> dict[str, Any] | None:
    """Summed model time and sample count from a run's timing.jsonl (written batch by batch)."""
    path = run_dir / TIMING_FILE
    if not path.exists():
        return None
    model_s, samples, batches = 0.0, 0, 0
    for _, row in iter_jsonl(path, skip_torn_tail=True):
        model_s += float(row.get("model_s", 0.0))
        samples += int(row.get("n", 0))
        batches += 1
    return {"model_s": model_s, "samples": samples, "batches": batches}


def _find_manifest(predictions: Path) -> dict[str, Any] | None:
    """The run manifest beside a predictions file: ours (manifest.json in a run folder) or the one
    `vlmkit infer --out FILE` writes (FILE.manifest.json)."""
    for candidate in (predictions.parent / MANIFEST_FILE, Path(f"{predictions}.manifest.json")):
        if candidate.exists():
            try:
                return json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                return None
    return None


def _infer_timing(manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    """`vlmkit infer` records the wall time of its last invocation and how many samples it predicted."""
    if not manifest or manifest.get("kind") != "predictions":
        return None
    predicted = (manifest.get("counts") or {}).get("predicted")
    elapsed = manifest.get("elapsed_s")
    if isinstance(predicted, int) and predicted > 0 and isinstance(elapsed, (int, float)) and elapsed > 0:
        return {"model_s": float(elapsed), "samples": predicted}
    return None


def write_scores(
    out_dir: Path,
    summary: dict[str, Any],
    rows: list[dict[str, Any]],
    records: Sequence[PredictionRecord],
    *,
    manifest: dict[str, Any] | None = None,
    make_plots: bool = True,
) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"sample_scores": write_jsonl(out_dir / SAMPLE_SCORES_FILE, rows)}
    latencies = [r.latency_s for r in records if r.latency_s is not None]
    paths["report"] = write_report(out_dir, summary, manifest=manifest, latencies=latencies, make_plots=make_plots)
    paths["scores"] = write_json(out_dir / SCORES_FILE, summary)
    return paths


def score(
    predictions: str | os.PathLike,
    task: str | Task | None = None,
    *,
    metrics: Sequence[str] | None = None,
    out_dir: str | os.PathLike | None = None,
    group_by: Sequence[str] | None = None,
    price_per_hour: float | None = DEFAULT_PRICE_PER_HOUR,
    tokenizer: str = "auto",
    submission: str | os.PathLike | None = None,
    make_plots: bool = True,
    judge: Any = None,
) -> dict[str, Any]:
    """Score a predictions file and write scores.json, sample_scores.jsonl and report.md into `out_dir`
    (default: the folder of the predictions file). Returns the summary (with a "files" entry).
    `judge`: a `prompt, temperature -> reply` function (eval/judge.py) for the multiple-choice / yes-no
    answers the rules can't place."""
    path = Path(predictions)
    if path.is_dir():
        path = path / PREDICTIONS_FILE
    resolved = resolve_task(task, metrics)
    records = read_predictions(path, require_answers=submission is None)
    out = Path(out_dir) if out_dir is not None else path.parent
    files: dict[str, Path] = {}
    if submission is not None:
        files["submission"] = write_submission(records, resolved, submission, source=path)
        if not any(r.answers for r in records):
            return {"task": resolved.name, "files": {k: str(v) for k, v in files.items()}}
    manifest = _find_manifest(path)
    timing = read_timing(path.parent) or _infer_timing(manifest)
    summary, rows = score_records(
        records,
        resolved,
        tokenizer=tokenizer,
        group_by=group_by,
        price_per_hour=price_per_hour,
        timing=timing,
        token_prices=token_prices(manifest),  # an API run keeps its token-based cost when scored again
        judge=judge,
    )
    summary["predictions_file"] = str(path)
    files.update(write_scores(out, summary, rows, records, manifest=manifest, make_plots=make_plots))
    summary["files"] = {k: str(v) for k, v in files.items()}
    return summary
