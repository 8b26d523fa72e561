"""Combine the predictions of several eval runs on the same task and samples into one scored run.

Each member run votes for its (normalised) answer to a sample, with an optional weight. Multiple-choice
rows (whose `meta` carries the options) vote for the option letter their answer selects, so "B", "B. cat"
and "The answer is B" are one vote. The answer with the most weight wins; a tie is broken by a stated rule:

- `order` (default): the tied answer of the run listed first (list your most trusted run first);
- `validation`: the tied answer of the member whose *validation* run scored best (`rank_by`: one scored
  run folder per member, on held-out data, so the test labels never choose the winner);
- `logprob`: the tied answer with the highest mean token log-probability (`mean_logprob` in the
  predictions rows), falling back to `order` where a row has none.

The result is a normal run folder (predictions.jsonl, manifest.json, scores.json, sample_scores.jsonl,
report.md), so `vlmkit compare` shows the ensemble beside its members with paired bootstrap intervals.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import VlmkitError
from ..io import write_json, write_jsonl
from ..metrics.vqa import normalize_answer
from .manifest import MANIFEST_FILE, data_hash
from .predictions import PREDICTIONS_FILE, PredictionRecord, read_predictions
from .scorefile import SCORES_FILE, score
from .tasks import TASKS, Task, task_from_dict

TIE_BREAKS = ("order", "validation", "logprob")
ENSEMBLE_FILE = "ensemble.json"


@dataclass
class Member:
    name: str
    path: Path
    task: dict[str, Any]
    records: dict[str, PredictionRecord]
    order: list[str]
    weight: float
    rank_score: float | None = None  # the member's score on its validation run (tie_break="validation")


def _read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST_FILE
    if not path.exists():
        raise VlmkitError(f"{run_dir} is not an eval run folder: no {MANIFEST_FILE}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise VlmkitError(f"{path}: unreadable manifest ({exc})") from None


def _load_member(path: str | os.PathLike, weight: float) -> Member:
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise VlmkitError(f"{run_dir}: not a folder (ensemble takes eval run folders)")
    manifest = _read_manifest(run_dir)
    task = manifest.get("task")
    if not isinstance(task, dict) or not task.get("name"):
        raise VlmkitError(f"{run_dir / MANIFEST_FILE}: records no task")
    if not (run_dir / PREDICTIONS_FILE).exists():
        raise VlmkitError(f"{run_dir}: no {PREDICTIONS_FILE}")
    rows = read_predictions(run_dir / PREDICTIONS_FILE, require_answers=False)
    return Member(run_dir.name, run_dir, task, {r.id: r for r in rows}, [r.id for r in rows], weight)


def _resolve_task(describe: dict[str, Any]) -> Task:
    """The members' task: a built-in by name when its definition is unchanged, else rebuilt from the manifest."""
    name = describe["name"]
    if name in TASKS and TASKS[name].describe() == describe:
        return TASKS[name]
    fields = {k: v for k, v in describe.items() if v is not None and k != "name"}
    return task_from_dict({"name": name, **fields}, source=f"task '{name}' recorded in the run manifest")


def _check_same_work(members: Sequence[Member]) -> None:
    first = members[0]
    for other in members[1:]:
        if other.task.get("name") != first.task.get("name"):
            raise VlmkitError(
                f"runs are on different tasks: {first.path} is '{first.task.get('name')}', "
                f"{other.path} is '{other.task.get('name')}'"
            )
        if other.task != first.task:
            changed = sorted(k for k in set(first.task) | set(other.task) if first.task.get(k) != other.task.get(k))
            raise VlmkitError(
                f"runs use different task settings ({', '.join(changed)}): {first.path} vs {other.path}; "
                "an ensemble needs the same prompt, metrics and post-processing"
            )
        only_first = set(first.records) - set(other.records)
        only_other = set(other.records) - set(first.records)
        if only_first or only_other:
            example = sorted(only_first or only_other)[0]
            raise VlmkitError(
                f"runs are over different samples: {first.path} has {len(only_first)} id(s) that "
                f"{other.path} lacks and it has {len(only_other)} the other lacks (e.g. '{example}'); "
                "finish or re-run the members on the same data first"
            )


def vote_key(record: PredictionRecord, task: Task) -> str:
    """What a prediction votes for: the option letter for multiple-choice rows, else the normalised answer."""
    options = record.meta.get("options") if isinstance(record.meta, dict) else None
    if isinstance(options, dict) and options:
        try:
            from ..metrics import extract_choice  # the multiple-choice matcher (VLMEvalKit's rules)
        except ImportError:
            extract_choice = None
        if extract_choice is not None:
            choice = extract_choice(record.prediction, options)
            return f"option:{choice}" if choice else "option:?"
    return normalize_answer(task.postprocess_answer(record.prediction))


def _winner(
    votes: dict[str, float], supporters: dict[str, list[int]], members: Sequence[Member], rows: Sequence[Any], rule: str
) -> tuple[str, bool]:
    """The winning key and whether a tie had to be broken."""
    best = max(votes.values())
    tied = [key for key, weight in votes.items() if weight == best]
    if len(tied) == 1:
        return tied[0], False
    if rule == "validation":
        return max(tied, key=lambda k: max(members[i].rank_score for i in supporters[k])), True
    if rule == "logprob":
        logprob = {k: [rows[i].get("mean_logprob") for i in supporters[k]] for k in tied}
        if all(all(isinstance(v, (int, float)) for v in values) for values in logprob.values()):
            return max(tied, key=lambda k: sum(logprob[k]) / len(logprob[k])), True
    return min(tied, key=lambda k: min(supporters[k])), True  # "order": the first-listed run's answer


def _raw_rows(member: Member) -> dict[str, dict[str, Any]]:
    """The predictions rows as written (for fields the record type does not keep, e.g. mean_logprob)."""
    from ..io import iter_jsonl

    return {str(row.get("id")): row for _, row in iter_jsonl(member.path / PREDICTIONS_FILE, skip_torn_tail=True)}


def _rank_scores(members: Sequence[Member], rank_by: Sequence[str | os.PathLike]) -> None:
    if len(rank_by) != len(members):
        raise VlmkitError(
            f"tie break 'validation' needs one validation run per member: {len(rank_by)} for {len(members)}"
        )
    for member, run in zip(members, rank_by):
        scores_path = Path(run) / SCORES_FILE
        if not scores_path.exists():
            raise VlmkitError(f"{run}: not a scored run (no {SCORES_FILE}) for the validation tie break")
        summary = json.loads(scores_path.read_text(encoding="utf-8"))
        primary = summary.get("primary") or (summary.get("metrics") or [None])[0]
        value = (summary.get("overall") or {}).get(primary)
        if not isinstance(value, (int, float)):
            raise VlmkitError(f"{scores_path}: no overall '{primary}' score to rank '{member.name}' by")
        member.rank_score = float(value)


def ensemble_runs(
    runs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    weights: Sequence[float] | None = None,
    tie_break: str = "order",
    rank_by: Sequence[str | os.PathLike] | None = None,
    overwrite: bool = False,
    make_plots: bool = True,
) -> dict[str, Any]:
    """Vote over the members' predictions and write a scored run folder at `out_dir`; returns its summary."""
    if len(runs) < 2:
        raise VlmkitError("an ensemble needs at least two eval runs")
    if tie_break not in TIE_BREAKS:
        raise VlmkitError(f"unknown tie break '{tie_break}' (choose from {', '.join(TIE_BREAKS)})")
    weights = list(weights) if weights else [1.0] * len(runs)
    if len(weights) != len(runs):
        raise VlmkitError(f"{len(weights)} weights for {len(runs)} runs")
    if any(not (w > 0) for w in weights):
        raise VlmkitError(f"weights must be positive, got {weights}")
    out = Path(out_dir)
    sources = [Path(r).resolve() for r in runs]
    target = out.resolve()
    for source in sources:
        if target == source or source.is_relative_to(target) or target.is_relative_to(source):
            raise VlmkitError(f"--out {out} overlaps the member run {source}; write the ensemble elsewhere")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise VlmkitError(f"{out} is not empty; pass --overwrite to replace it")

    members = [_load_member(r, w) for r, w in zip(runs, weights)]
    _check_same_work(members)
    if tie_break == "validation":
        _rank_scores(members, rank_by or [])
    task = _resolve_task(members[0].task)
    raw = [_raw_rows(m) for m in members] if tie_break == "logprob" else None

    predictions, ties, unanimous, all_failed = [], 0, 0, 0
    for sample_id in members[0].order:
        records = [m.records[sample_id] for m in members]
        votes: dict[str, float] = {}
        supporters: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            if record.error is not None:
                continue  # a failed sample has no answer to vote for
            key = vote_key(record, task)
            votes[key] = votes.get(key, 0.0) + members[i].weight
            supporters.setdefault(key, []).append(i)
        base = records[0]
        latency = sum(r.latency_s or 0.0 for r in records)
        if not votes:
            all_failed += 1
            predictions.append({**base.to_json(), "latency_s": latency, "error": "every member failed this sample"})
            continue
        rows = [raw[i][sample_id] if raw else {} for i in range(len(members))]
        key, was_tie = _winner(votes, supporters, members, rows, tie_break)
        ties += was_tie
        unanimous += len(votes) == 1 and len(supporters[key]) == len(members)
        chosen = records[supporters[key][0]]
        row = {**chosen.to_json(), "latency_s": latency}
        row.pop("error", None)
        row["ensemble"] = {
            "votes": {k: round(v, 6) for k, v in sorted(votes.items(), key=lambda kv: -kv[1])},
            "from": members[supporters[key][0]].name,
            "tie": was_tie,
        }
        predictions.append(row)

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir() if overwrite else ():
        if stale.is_file():
            stale.unlink()
    write_jsonl(out / PREDICTIONS_FILE, predictions)
    details = {
        "members": [{"name": m.name, "path": str(m.path.resolve()), "weight": m.weight} for m in members],
        "tie_break": tie_break,
        "rank_by": [str(Path(r).resolve()) for r in rank_by] if tie_break == "validation" and rank_by else None,
        "samples": len(predictions),
        "ties_broken": ties,
        "unanimous": unanimous,
        "all_members_failed": all_failed,
    }
    manifest = {
        "kind": "ensemble",
        "task": members[0].task,
        "generation": members[0].task.get("generation"),
        "prompt": members[0].task.get("prompt"),
        "model": "ensemble(" + ", ".join(m.name for m in members) + ")",
        "engine": {"backend": "ensemble", "members": len(members)},
        "samples": len(predictions),
        "data_hash": data_hash([{"id": p["id"], "question": p["question"]} for p in predictions]),
        "ensemble": details,
        "status": "complete",
    }
    write_json(out / MANIFEST_FILE, manifest)
    write_json(out / ENSEMBLE_FILE, details)
    summary = score(out / PREDICTIONS_FILE, task, out_dir=out, make_plots=make_plots)
    summary["ensemble"] = details
    return summary
