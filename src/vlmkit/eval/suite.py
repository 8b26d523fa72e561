"""Evaluate one model on several (task, dataset) pairs with one model load: what `vlmkit eval`, the
quickstart, sweeps and data-parallel runs call.

    from vlmkit.eval.suite import SuiteRun, evaluate_suite
    result = evaluate_suite("run/final", [SuiteRun("docvqa", "data/docvqa"), SuiteRun("chartqa", "data/chartqa")],
                            out="evals/run1", engine_options=EngineOptions(dtype="bfloat16"))

Everything is checked (tasks, datasets, slice, output folders) before the engine loads; each pair is then run
by `vlmkit.eval.runner.evaluate` (resumable, scored, reported) into its own folder, and with several pairs a
summary.md is written under `out`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..distributed import per_rank_engine
from ..errors import VlmkitError
from .runner import EvalResult, PredictFn, evaluate, parse_slice, tqdm_progress
from .scoring import DEFAULT_PRICE_PER_HOUR
from .tasks import Task, get_task

if TYPE_CHECKING:
    from ..infer.options import EngineOptions

REMOTE_BATCH_PER_REQUEST_SLOT = 4


@dataclass(frozen=True)
class SuiteRun:
    """One task on one dataset. `out_dir` defaults to the suite's `out` (one run) or `out/<task name>`;
    `label` names its progress bar (default "eval <task name>")."""

    task: str | os.PathLike | Task
    data: str | os.PathLike
    out_dir: str | os.PathLike | None = None
    label: str | None = None


@dataclass
class SuiteResult:
    runs: list[tuple[SuiteRun, EvalResult]] = field(default_factory=list)  # resolved runs, in order
    summary_file: Path | None = None  # summary.md, with several scored runs


def evaluate_suite(
    model: str,
    runs: Sequence[SuiteRun | tuple[Any, Any]],
    out: str | os.PathLike | None = None,
    *,
    adapter: str | os.PathLike | None = None,
    engine_options: EngineOptions | None = None,
    predictor: tuple[PredictFn, Mapping[str, Any]] | None = None,
    batch_size: int = 8,
    slice: str | None = None,  # noqa: A002 - the CLI's name
    max_new_tokens: int | None = None,
    num_beams: int | None = None,
    price_per_hour: float | None = DEFAULT_PRICE_PER_HOUR,
    tokenizer: str = "auto",
    submission: str | os.PathLike | None = None,
    retry_errors: bool = False,
    overwrite: bool = False,
    make_plots: bool = True,
    progress: Callable[[str], Any] | None = None,
    on_result: Callable[[SuiteRun, EvalResult], None] | None = None,
    runner_options: Mapping[str, Any] | None = None,
) -> SuiteResult:
    """Evaluate `model` (+ `adapter`) on every run; returns each run's EvalResult.

    `engine_options` say how to load the engine (default: in process, auto dtype); `predictor` is an
    already loaded (predict callable, manifest facts) pair used instead, e.g. to share one load between
    suites. `max_new_tokens` / `num_beams` override every task's generation settings. `progress(label)`
    returns a tqdm-like bar per run (closed when the run ends); `on_result` sees each result as it is written.
    `runner_options` pass through to `vlmkit.eval.runner.evaluate`.
    """
    from ..data.schema import read_samples

    if batch_size < 1:
        raise VlmkitError(f"--batch-size must be at least 1 (got {batch_size})")
    if num_beams is not None and num_beams < 1:
        raise VlmkitError(f"--num-beams must be at least 1 (got {num_beams})")
    if not runs:
        raise VlmkitError("nothing to evaluate: give at least one task and dataset")
    if submission is not None and len(runs) > 1:
        raise VlmkitError("--submission writes one task's file: evaluate that task on its own")
    resolved = _resolve_runs(runs, out, max_new_tokens, num_beams)
    datasets = [read_samples(run.data) for run in resolved]  # bad data fails here, before a model is loaded
    resolved_slice = parse_slice(slice)
    if predictor is None:
        engine_options = per_rank_engine(engine_options)
        if engine_options is not None and engine_options.launched:  # vLLM is told what the data holds
            from ..infer.vllm_launcher import fitted_to_data

            log_file = Path(out) / "logs" / "vllm.log" if out is not None else None
            engine_options = fitted_to_data(engine_options, [s for d in datasets for s in d], log_file)
    predict, facts = predictor or _load(model, adapter, batch_size, engine_options)
    if engine_options is not None and engine_options.remote:
        # a batch is what the runner hands over at once; an endpoint needs enough to keep `concurrency` busy
        batch_size = max(batch_size, REMOTE_BATCH_PER_REQUEST_SLOT * engine_options.endpoint.concurrency)

    result = SuiteResult()
    for run, samples in zip(resolved, datasets):
        bar = progress(run.label) if progress else None
        try:
            evaluated = evaluate(
                predict,
                run.task,
                samples,
                run.out_dir,
                batch_size=batch_size,
                slice=resolved_slice,
                manifest={**facts, "data": str(run.data)},
                price_per_hour=price_per_hour,
                tokenizer=tokenizer,
                submission=submission,
                retry_errors=retry_errors,
                overwrite=overwrite,
                make_plots=make_plots,
                progress=tqdm_progress(bar) if bar is not None else None,
                **(runner_options or {}),
            )
        finally:
            if bar is not None:
                bar.close()
        _record_endpoint(predict, evaluated)
        result.runs.append((run, evaluated))
        if on_result:
            on_result(run, evaluated)
    scored = [(r.task.name, r.data, Path(r.out_dir), e.summary) for r, e in result.runs if e.summary is not None]
    if out is not None and len(resolved) > 1 and scored:
        from .report import write_suite_summary

        result.summary_file = write_suite_summary(Path(out), model=model, adapter=adapter, runs=scored)
    return result


def _resolve_runs(
    runs: Sequence[SuiteRun | tuple[Any, Any]], out: Any, max_new_tokens: int | None, num_beams: int | None
) -> list[SuiteRun]:
    """Tasks resolved (with the overrides), output folders decided, and two runs sharing one folder refused."""
    overrides = {k: v for k, v in (("max_new_tokens", max_new_tokens), ("num_beams", num_beams)) if v is not None}
    resolved = []
    for run in runs:
        run = run if isinstance(run, SuiteRun) else SuiteRun(*run)
        task = get_task(run.task)
        if overrides:
            task = dataclasses.replace(task, generation=dataclasses.replace(task.generation, **overrides))
        out_dir = run.out_dir
        if out_dir is None:
            if out is None:
                raise VlmkitError(f"task {task.name}: give the suite an output folder or the run its own")
            out_dir = Path(out) if len(runs) == 1 else Path(out) / task.name
        resolved.append(
            dataclasses.replace(run, task=task, out_dir=Path(out_dir), label=run.label or f"eval {task.name}")
        )
    folders = [Path(r.out_dir).resolve() for r in resolved]
    for i, folder in enumerate(folders):
        if folder in folders[:i]:
            raise VlmkitError(f"task {resolved[i].task.name} is given twice; one run per task")
    return resolved


def _load(model: str, adapter: Any, batch_size: int, engine_options: EngineOptions | None) -> tuple[Any, dict]:
    from .engine import load_predict_fn

    return load_predict_fn(model, adapter=adapter, batch_size=batch_size, engine_options=engine_options)


def _record_endpoint(predict: Any, evaluated: EvalResult) -> None:
    """Add what only the answers tell (a remote endpoint's system_fingerprint) to the run's manifest."""
    import json

    from ..io import write_json

    engine = getattr(predict, "engine", None)
    path = evaluated.files.get("manifest")
    if engine is None or not getattr(engine, "remote", False) or path is None:
        return
    fingerprint = engine.info().get("system_fingerprint")
    if fingerprint is None:
        return
    manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    manifest.setdefault("engine", {})["system_fingerprint"] = fingerprint
    write_json(path, manifest)
