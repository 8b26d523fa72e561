"""Run a model over a task's samples, writing predictions.jsonl as it goes, then score and report.

`evaluate(predict, task, samples, out_dir)` is model-agnostic: `predict` is any callable that takes a list
of `EvalRequest` (chat messages with the task prompt applied, generation settings, the Sample) and returns,
in order, one string or one mapping {"prediction": str, "latency_s"?: float, "error"?: str} per request.
`vlmkit eval` wraps the inference engine into such a callable (see `engine_predict_fn`).

Data parallel (torchrun / accelerate launch): the ranks split the samples still to do, each appending to its own
part file, and rank 0 merges and scores (vlmkit.distributed, the scheme `vlmkit infer --data` shares).

Crash safety: each prediction line is appended and flushed before the next batch starts, and a torn last
line (kill -9 mid-write) is dropped on reopen, so a re-run with the same arguments resumes by id and never
duplicates or loses a sample. The manifest guards against resuming with another model, prompt or data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.schema import Sample, read_samples
from ..data.slicing import select_slice, slice_bounds, slice_text
from ..distributed import DataParallel, fold_parts, part_files
from ..errors import DataError, EngineGone, VlmkitError
from ..io import JsonlAppender, exclusive_lock, iter_jsonl, write_json, write_jsonl
from .manifest import MANIFEST_FILE, build_manifest, resume_mismatch
from .predictions import PREDICTIONS_FILE, USAGE_KEYS, PredictionRecord, parse_prediction
from .report import REPORT_FILE
from .scorefile import SAMPLE_SCORES_FILE, SCORES_FILE, TIMING_FILE, read_timing, write_scores
from .scoring import DEFAULT_PRICE_PER_HOUR, score_records, token_prices
from .submission import write_submission
from .tasks import GenerationSettings, Task, get_task

log = logging.getLogger(__name__)
LOCK_FILE = ".eval.lock"  # held by rank 0 while a run writes its folder (io.exclusive_lock)


@dataclass
class EvalRequest:
    """One sample as the model sees it."""

    id: str
    messages: list[dict[str, Any]]  # HF chat format, media paths absolute
    generation: GenerationSettings
    sample: Sample

    @property
    def question(self) -> str:
        return self.sample.question()


PredictFn = Callable[[list[EvalRequest]], Sequence[Any]]


@dataclass
class EvalResult:
    out_dir: Path
    predicted: int  # samples predicted by this invocation
    total: int
    summary: dict[str, Any] | None
    files: dict[str, Path] = field(default_factory=dict)


def tqdm_progress(bar: Any) -> Callable[[int, int], None]:
    """The runner's progress(done, total) callback drawn on a tqdm bar. The first call sets the total and
    starts the count at what a resumed run has already done, so the rate and time left stay true."""

    from ..progress import DeferredProgress

    def progress(done: int, total: int) -> None:
        if isinstance(bar, DeferredProgress):  # drawn from the first call on, with the right numbers
            if bar.total != total:
                bar.start(total, done)
            else:
                bar.update(done - bar.n)
            return
        if bar.total != total:
            bar.reset(total)
            bar.initial = bar.n = done
            bar.refresh()
        else:
            bar.update(done - bar.n)

    return progress


def parse_slice(spec: str | slice | tuple[int | None, int | None] | None, total: int | None = None) -> slice | None:
    """ "a:b", ":b", "a:" (dataset positions, as `vlmkit infer --slice`) -> slice; with `total` (the dataset
    size) a slice past the end is an error naming the size, as in infer (vlmkit.data.slicing)."""
    bounds = slice_bounds(spec)
    if bounds is None:
        return None
    return select_slice(spec, total) if total is not None else slice(*bounds)


def _slice_text(spec: Any) -> str | None:
    return slice_text(spec)


def _load_samples(samples: Iterable[Sample] | str | os.PathLike, spec: slice | None) -> tuple[list[Sample], str | None]:
    source = None
    if isinstance(samples, (str, os.PathLike)):
        source = str(samples)
        samples = read_samples(samples)
    samples = list(samples)
    seen: set[str] = set()
    for sample in samples:
        if sample.id in seen:
            raise DataError(f"duplicate sample id '{sample.id}'", path=source)
        seen.add(sample.id)
    if not samples:
        raise VlmkitError("no samples to evaluate (empty data)")
    if spec is not None:
        samples = samples[select_slice(spec, len(samples))]
    return samples, source


def _existing(path: Path) -> list[PredictionRecord]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    records, seen = [], set()
    for line, obj in iter_jsonl(path, skip_torn_tail=True):
        record = parse_prediction(obj, path=path, line=line, require_answers=False)
        if record.id in seen:
            raise DataError(f"duplicate id '{record.id}' in an existing run", path=path, record=f"line {line}")
        seen.add(record.id)
        records.append(record)
    return records


def _to_record(request: EvalRequest, output: Any, batch_seconds: float) -> dict[str, Any]:
    sample = request.sample
    row: dict[str, Any] = {
        "id": sample.id,
        "question": sample.question(),
        "prediction": "",
        "answers": list(sample.answers),
        "meta": sample.meta,
        "latency_s": batch_seconds,
    }
    if isinstance(output, str):
        row["prediction"] = output
    elif isinstance(output, Mapping):
        text = output.get("prediction", output.get("text"))
        if output.get("error"):
            row["error"] = str(output["error"])
        if isinstance(text, str):
            row["prediction"] = text
        elif "error" not in row:
            row["error"] = f"engine returned no text (got {type(text).__name__})"
        latency = output.get("latency_s")
        if isinstance(latency, (int, float)) and not isinstance(latency, bool) and latency >= 0:
            row["latency_s"] = float(latency)
        row.update({k: output[k] for k in USAGE_KEYS if output.get(k) is not None})
    else:
        row["error"] = f"engine returned {type(output).__name__}, expected a string or a mapping"
    return row


def _predict_batch(predict: PredictFn, requests: list[EvalRequest]) -> list[Any]:
    """Run one batch; if it fails, retry sample by sample so one bad sample doesn't sink its batch."""
    try:
        outputs = list(predict(requests))
        if len(outputs) != len(requests):
            raise VlmkitError(f"predict returned {len(outputs)} outputs for {len(requests)} requests")
        return outputs
    except (KeyboardInterrupt, SystemExit, EngineGone):  # no sample can be answered: stop, resume later
        raise
    except Exception as exc:
        if len(requests) == 1:
            log.warning("sample %s failed: %s", requests[0].id, exc)
            return [{"error": f"{type(exc).__name__}: {exc}"}]
        log.warning("batch failed (%s); retrying its %d samples one by one", exc, len(requests))
        return [_predict_batch(predict, [r])[0] for r in requests]


def evaluate(
    predict: PredictFn | Any,
    task: str | Task,
    samples: Iterable[Sample] | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 8,
    slice: str | slice | tuple[int | None, int | None] | None = None,  # noqa: A002 - CLI name
    manifest: Mapping[str, Any] | None = None,
    price_per_hour: float | None = DEFAULT_PRICE_PER_HOUR,
    tokenizer: str = "auto",
    submission: str | os.PathLike | None = None,
    retry_errors: bool = False,
    overwrite: bool = False,
    make_plots: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Predict every sample not yet in out_dir/predictions.jsonl, then write scores.json, sample_scores.jsonl,
    report.md, plots and (optionally) a submission file. `predict` is a predict callable or an inference
    engine (vlmkit.infer); `manifest` adds run facts (model, adapter, pixels...)."""
    started = time.perf_counter()
    task = get_task(task)
    if not callable(predict) and hasattr(predict, "generate"):  # an inference engine object
        from .engine import engine_facts, engine_predict_fn

        manifest = {**engine_facts(predict), **(manifest or {})}
        predict = engine_predict_fn(predict)
    if batch_size < 1:
        raise VlmkitError(f"batch size must be at least 1 (got {batch_size})")
    samples, source = _load_samples(samples, parse_slice(slice))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred_path, timing_path = out / PREDICTIONS_FILE, out / TIMING_FILE
    manifest_path = out / MANIFEST_FILE
    parallel = DataParallel(pred_path)

    run_info = dict(manifest or {})
    run_info.setdefault("data", source)
    run_info.setdefault("slice", _slice_text(slice))
    run_info["world_size"] = parallel.world.size
    new_manifest = build_manifest(task.describe(), samples, batch_size=batch_size, **run_info)
    # Rank 0 alone reads and rewrites the run folder; the others learn the outcome (or its error) from it. Rank 0
    # holds the folder's lock until the run ends: a second eval there would ask every sample again beside this one.
    with contextlib.ExitStack() as lock:

        def prepare() -> tuple[list[int], int, str | None]:
            lock.enter_context(exclusive_lock(out / LOCK_FILE, "`vlmkit eval`"))
            return _prepare(out, samples, new_manifest, overwrite=overwrite, retry_errors=retry_errors)

        pending_index, done_count, created = parallel.on_main("preparing the run folder", prepare)
        new_manifest["created"] = created or new_manifest["created"]
        pending = [samples[i] for i in pending_index]

        parallel_started = time.perf_counter()
        # one process: everything, appended to predictions.jsonl; a job: this rank's share, to its own part file
        mine = parallel.share(pending)
        start_count = 0 if parallel.distributed else done_count
        appender = JsonlAppender(parallel.output)
        timing_log = None if parallel.distributed else JsonlAppender(timing_path)
        try:
            model_s = _run(
                predict,
                task,
                mine,
                batch_size,
                appender,
                timing_log,
                start_count,
                start_count + len(mine),
                progress if parallel.main else None,
            )
        finally:
            appender.close()
            if timing_log is not None:
                timing_log.close()
        if not parallel.gather({s.id: i for i, s in enumerate(samples)}):
            return EvalResult(out_dir=out, predicted=len(mine), total=len(samples), summary=None, files={})
        if parallel.distributed:
            # the job's rate: every rank's samples over the time the ranks ran side by side (the merge not included)
            model_s = time.perf_counter() - parallel_started - parallel.merged_s
            with JsonlAppender(timing_path) as timing:
                timing.write({"n": len(pending), "model_s": model_s, "world_size": parallel.world.size})

        scoring_started = time.perf_counter()
        records = {r.id: r for r in _existing(pred_path)}
        ordered = [records[s.id] for s in samples if s.id in records]
        if len(ordered) != len(samples):  # cannot happen unless the file was edited while we ran
            raise VlmkitError(f"{pred_path} is missing {len(samples) - len(ordered)} predictions after the run")

        files: dict[str, Path] = {"predictions": pred_path, "manifest": manifest_path}
        predicted = len(pending)
        if submission is not None:
            files["submission"] = write_submission(ordered, task, submission, source=pred_path)
        summary = None
        final_manifest = {**new_manifest, "status": "complete"}
        if any(r.answers for r in ordered):
            summary, rows = score_records(
                ordered,
                task,
                tokenizer=tokenizer,
                price_per_hour=price_per_hour,
                timing=read_timing(out),
                token_prices=token_prices(new_manifest),
            )
            summary["timing"] = _timing(started, model_s, predicted, parallel.merged_s, scoring_started)
            files.update(write_scores(out, summary, rows, ordered, manifest=final_manifest, make_plots=make_plots))
            # again, now that the report is written: the timing includes it
            summary["timing"] = _timing(started, model_s, predicted, parallel.merged_s, scoring_started)
            write_json(out / SCORES_FILE, summary)
        write_json(manifest_path, final_manifest)
        return EvalResult(out_dir=out, predicted=predicted, total=len(samples), summary=summary, files=files)


def _prepare(
    out: Path, samples: list[Sample], new_manifest: dict[str, Any], *, overwrite: bool, retry_errors: bool
) -> tuple[list[int], int, str | None]:
    """Rank 0 (or the only process): check the folder may be resumed, write the running manifest, fold in what an
    interrupted job left, and say which samples are still to do (their indices), how many are done and when the
    run was first created."""
    pred_path, manifest_path = out / PREDICTIONS_FILE, out / MANIFEST_FILE
    created = None
    if overwrite:  # everything a previous run wrote, so no stale score outlives its predictions
        for name in (PREDICTIONS_FILE, TIMING_FILE, MANIFEST_FILE, SCORES_FILE, SAMPLE_SCORES_FILE, REPORT_FILE):
            (out / name).unlink(missing_ok=True)
        for part in part_files(pred_path):
            part.unlink()
    elif manifest_path.exists() and (pred_path.exists() or part_files(pred_path)):
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
        key = resume_mismatch(old, new_manifest)
        if key:
            raise VlmkitError(
                f"{out} holds a run with a different {key}; use a new --out folder, or --overwrite "
                "to start this one again"
            )
        created = old.get("created")
    write_json(manifest_path, {**new_manifest, "created": created or new_manifest["created"], "status": "running"})

    by_id = {s.id: i for i, s in enumerate(samples)}
    fold_parts(pred_path, by_id)  # parts of an interrupted data-parallel job, whatever its size
    JsonlAppender(pred_path).close()  # repairs a torn tail left by a crash before we read
    existing = _existing(pred_path)
    unknown = [r.id for r in existing if r.id not in by_id]
    if unknown:
        raise VlmkitError(
            f"{pred_path} has predictions for ids not in this data (e.g. '{unknown[0]}'); "
            "use a new --out folder or --overwrite"
        )
    if retry_errors and any(r.error for r in existing):
        existing = [r for r in existing if not r.error]
        write_jsonl(pred_path, [r.to_json() for r in existing])
    done = {r.id for r in existing}
    return [i for i, s in enumerate(samples) if s.id not in done], len(done), created


def _timing(started: float, model_s: float, predicted: int, merge_s: float, scoring_started: float) -> dict[str, float]:
    """Where the run's time went; merge_s is rank 0 merging a data-parallel job's part files, score_s the scoring
    and report after it (outside_model_share also holds loading data and, in a job, waiting for the other ranks)."""
    now = time.perf_counter()
    wall = now - started
    return {
        "wall_s": wall,
        "model_s": model_s,
        "merge_s": merge_s,
        "score_s": now - scoring_started,
        "predicted": predicted,
        "outside_model_share": (wall - model_s) / wall if wall > 0 else 0.0,
    }


def _run(
    predict: PredictFn,
    task: Task,
    pending: list[Sample],
    batch_size: int,
    appender: JsonlAppender,
    timing_log: JsonlAppender | None,
    done: int,
    total: int,
    progress: Callable[[int, int], None] | None,
) -> float:
    model_s = 0.0
    if progress:
        progress(done, total)  # the starting point: what a resumed run already has
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        requests = [EvalRequest(s.id, task.build_messages(s), task.generation, s) for s in batch]
        t0 = time.perf_counter()
        outputs = _predict_batch(predict, requests)
        seconds = time.perf_counter() - t0
        model_s += seconds
        for request, output in zip(requests, outputs):
            appender.write(_to_record(request, output, seconds))
        if timing_log is not None:
            timing_log.write({"n": len(batch), "model_s": seconds})
        done += len(batch)
        if progress:
            progress(done, total)
    return model_s
