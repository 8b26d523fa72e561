"""CLI: `vlmkit eval`, `vlmkit score`, `vlmkit compare` — thin layers over vlmkit.eval.

Only typer is imported here; the eval package (numpy, matplotlib, pycocoevalcap) and the inference engine
(torch, transformers) are imported inside the commands, so `vlmkit --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from .engine_options import ADAPTER, MODEL, with_engine_options

TASK_HELP = (
    "Task name (docvqa, infovqa, chartqa, vizwiz, textvqa, vitextvqa, video-caption) or the path of a task YAML file."
)


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    for warning in summary.get("warnings", []):  # stderr, so --json output stays one JSON line
        typer.secho(f"warning: {warning}", err=True, fg="yellow")
    if as_json:
        typer.echo(json.dumps({k: v for k, v in summary.items() if k != "files"}, ensure_ascii=False, default=str))
        return
    counts = summary["counts"]
    typer.echo(
        f"task {summary['task']}: {counts['scored']} scored of {counts['predictions']} predictions"
        + (f", {counts['errors']} engine errors (--retry-errors predicts them again)" if counts["errors"] else "")
    )
    width = max(len(m) for m in summary["metrics"])
    for metric in summary["metrics"]:
        mark = "  (primary)" if metric == summary["primary"] else ""
        typer.echo(f"  {metric:<{width}}  {100 * summary['overall'][metric]:8.2f}{mark}")
    for key, table in summary["groups"].items():
        primary = summary["primary"]
        cells = ", ".join(f"{label} {100 * row[primary]:.1f} (n={row['n']})" for label, row in list(table.items())[:8])
        typer.echo(f"  by {key}: {cells}")
    extraction = summary.get("answer_extraction")
    if extraction:
        typer.echo(
            f"  answers read by the rules: {extraction['rules']}, by the judge: {extraction['judge']}, "
            f"undecided (scored wrong): {extraction['undecided']}"
        )
    failures = summary.get("failures")
    if failures and failures["wrong"]:
        cells = ", ".join(f"{c} {n}" for c, n in failures["counts"].items())
        typer.echo(f"  wrong answers: {failures['wrong']} ({cells})")
    for name, path in summary.get("files", {}).items():
        typer.echo(f"  wrote {name}: {path}")


def score_cmd(
    predictions: Path = typer.Argument(
        ...,
        help="predictions.jsonl (or a run folder holding one), from vlmkit or "
        "any tool: one JSON object per line with id, prediction, answers "
        "(meta, question, latency_s optional).",
    ),
    task: str | None = typer.Option(None, "--task", "-t", help=TASK_HELP),
    metric: list[str] | None = typer.Option(
        None,
        "--metric",
        "-m",
        help="Metric to compute (repeatable); "
        "replaces the task's metrics, or scores without a task. Known: "
        "vqa_accuracy, vqa_accuracy_lmms, anls, relaxed_accuracy, exact_match, "
        "token_f1, bleu, rouge_l, cider, meteor, similarity, choice_accuracy, yes_no_accuracy, mmmu_accuracy.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Where to write scores.json, sample_scores.jsonl, "
        "report.md and plots/ (default: the folder of PREDICTIONS).",
    ),
    group_by: list[str] | None = typer.Option(
        None,
        "--group-by",
        help="Meta key to break scores down by (repeatable; default: the task's keys plus every categorical meta key).",
    ),
    price_per_hour: float = typer.Option(
        1.0, "--price-per-hour", help="Hardware price in $/hour, for the cost per 1,000 images."
    ),
    tokenizer: str = typer.Option(
        "auto",
        help="Caption tokenizer for BLEU/ROUGE-L/CIDEr/METEOR: ptb (java, as "
        "published), simple (java-free approximation), none, or auto (ptb if java is "
        "installed).",
    ),
    submission: Path | None = typer.Option(
        None,
        "--submission",
        help="Also write the task's submission file "
        "(VizWiz / DocVQA / TextVQA formats); predictions without answers "
        "are then allowed.",
    ),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG charts."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON line."),
    judge_base_url: str | None = typer.Option(
        None,
        "--judge-base-url",
        help="OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1) of an LLM judge that reads the "
        "multiple-choice / yes-no answers the rules can't place. Off by default (those score wrong).",
    ),
    judge_model: str | None = typer.Option(None, "--judge-model", help="Model name the judge server serves."),
) -> None:
    """Score an existing predictions file against its reference answers and write a report."""
    from ..eval import score

    judge = None
    if judge_base_url or judge_model:
        if not (judge_base_url and judge_model):
            from ..errors import ConfigError

            raise ConfigError("give both --judge-base-url and --judge-model (the LLM judge needs both)")
        from ..eval.judge import openai_complete

        judge = openai_complete(judge_base_url, judge_model)
    summary = score(
        predictions,
        task,
        metrics=metric or None,
        out_dir=out,
        group_by=group_by or None,
        price_per_hour=price_per_hour,
        tokenizer=tokenizer,
        submission=submission,
        make_plots=not no_plots,
        judge=judge,
    )
    if "overall" not in summary:
        typer.echo(f"no reference answers: wrote the submission file {summary['files']['submission']}")
        return
    _print_summary(summary, as_json)


def compare_cmd(
    runs: list[Path] = typer.Argument(
        ..., help="Scored run folders (each with scores.json and sample_scores.jsonl); the first is the base."
    ),
    name: list[str] | None = typer.Option(
        None, "--name", "-n", help="Display name per run, in order (default: folder names)."
    ),
    metric: list[str] | None = typer.Option(
        None, "--metric", "-m", help="Only these metrics (default: all that every run has)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for compare.md, compare.json and compare.png (default: print the Markdown only).",
    ),
    resamples: int = typer.Option(1000, help="Paired bootstrap resamples for the delta intervals."),
    confidence: float = typer.Option(0.95, help="Confidence level of the intervals."),
    seed: int = typer.Option(0, help="Bootstrap random seed."),
) -> None:
    """Side-by-side table of runs (e.g. base vs fine-tuned, LoRA-rank ablation) with deltas to the first run
    and paired bootstrap confidence intervals."""
    from ..eval import compare

    if not 0 < confidence < 1:
        raise typer.BadParameter("must be between 0 and 1", param_hint="--confidence")
    if resamples < 10:
        raise typer.BadParameter("use at least 10", param_hint="--resamples")
    result = compare(
        runs,
        out_dir=out,
        names=name or None,
        metrics=metric or None,
        resamples=resamples,
        seed=seed,
        confidence=confidence,
    )
    typer.echo(result["markdown"])
    for kind, path in result.get("files", {}).items():
        typer.echo(f"wrote {kind}: {path}")


@with_engine_options()
def eval_cmd(
    model: str = MODEL,
    task: list[str] = typer.Option(
        ...,
        "--task",
        "-t",
        help=TASK_HELP + " Repeat with --data to evaluate "
        "several benchmarks with one model load, e.g. --task docvqa --data d/docvqa "
        "--task chartqa --data d/chartqa.",
    ),
    data: list[Path] = typer.Option(
        ...,
        "--data",
        help="Dataset folder (samples.jsonl + media/) or a samples.jsonl; one per --task, in the same order.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Run folder: predictions.jsonl, scores.json, report.md, "
        "plots/, manifest.json (with several tasks: one such folder per task under OUT, "
        "plus summary.md). Re-running with the same arguments resumes.",
    ),
    adapter: Path | None = ADAPTER,
    slice_: str | None = typer.Option(
        None,
        "--slice",
        help="START:STOP of the dataset (file order, either side may be empty), e.g. 0:200; past the end is an error.",
    ),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Samples per generate call."),
    submission: Path | None = typer.Option(
        None,
        "--submission",
        help="Write the task's submission file "
        "(for test splits without answers); a .npy name writes the answers "
        "as a numpy array in dataset order.",
    ),
    price_per_hour: float = typer.Option(
        1.0, "--price-per-hour", help="Hardware price in $/hour, for the cost per 1,000 images."
    ),
    max_new_tokens: int | None = typer.Option(None, help="Override the task's generation length."),
    num_beams: int | None = typer.Option(
        None, "--num-beams", help="Override the task's beam search width (1 = greedy)."
    ),
    tokenizer: str = typer.Option("auto", help="Caption tokenizer: ptb, simple, none or auto."),
    retry_errors: bool = typer.Option(
        False, "--retry-errors", help="On resume, predict again the samples that failed before."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard an existing run in --out and start over."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG charts."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (as infer)."),
    engine_options=None,
) -> None:
    """Run MODEL on a task's samples (or several tasks'), write predictions.jsonl as it goes (resumable), then
    score and report.

    Pass the training run's config (--config RUN_DIR/config.yaml) or --max-pixels / --nframes so images and
    videos are prepared as in training; the settings are recorded in manifest.json and checked on resume."""
    from ..errors import VlmkitError
    from ..eval.suite import SuiteRun, evaluate_suite
    from ..progress import DeferredProgress

    if len(task) != len(data):
        raise VlmkitError(f"{len(task)} --task but {len(data)} --data: give one dataset per task, in order")

    from ..distributed import current_world

    main = current_world().main  # under torchrun only rank 0 reports; the others' results are its parts

    def report(run: SuiteRun, result: Any) -> None:
        if not main:
            return
        typer.echo(f"{result.predicted} new predictions, {result.total} in {result.out_dir}")
        if result.summary is not None:
            _print_summary({**result.summary, "files": {k: str(v) for k, v in result.files.items()}}, False)
        elif "submission" in result.files:
            typer.echo(f"no reference answers: wrote the submission file {result.files['submission']}")

    suite = evaluate_suite(
        model,
        [SuiteRun(name, path) for name, path in zip(task, data)],
        out,
        adapter=adapter,
        engine_options=engine_options,
        batch_size=batch_size,
        slice=slice_,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        price_per_hour=price_per_hour,
        tokenizer=tokenizer,
        submission=submission,
        retry_errors=retry_errors,
        overwrite=overwrite,
        make_plots=not no_plots,
        progress=lambda label: DeferredProgress(label, "sample", enabled=main and not no_progress),
        on_result=report,
    )
    if suite.summary_file is not None:
        typer.echo(f"summary: {suite.summary_file}")


def register(app: typer.Typer) -> None:
    app.command("eval", help="Run a model on an evaluation task (resumable), then score and report.")(eval_cmd)
    app.command("score", help="Score an existing predictions file (from vlmkit or any tool) and write a report.")(
        score_cmd
    )
    app.command("compare", help="Compare scored runs side by side with paired bootstrap confidence intervals.")(
        compare_cmd
    )
