"""CLI: `vlmkit infer` (one question, or a whole dataset to predictions.jsonl) and `vlmkit chat`.

Thin layers over vlmkit.infer (predict_dataset, ChatSession/chat_loop); torch loads inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from .engine_options import ADAPTER, MODEL, with_engine_options, with_generation_options


@with_generation_options(64)
@with_engine_options()
def infer(
    model: str = MODEL,
    adapter: Path | None = ADAPTER,
    image: list[str] | None = typer.Option(None, "--image", "-i", help="Image path or URL (repeat for several)."),
    video: list[str] | None = typer.Option(None, "--video", help="Video path (Qwen families)."),
    question: str | None = typer.Option(None, "--question", "-q", help="The question (single-answer mode)."),
    data: Path | None = typer.Option(None, "--data", "-d", help="Dataset folder (samples.jsonl + media/)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="predictions.jsonl to write (resumed if it exists)."),
    slice_spec: str | None = typer.Option(None, "--slice", help="START:STOP of the dataset, e.g. 0:100."),
    batch_size: int = typer.Option(16, "--batch-size", "-b", help="Requests per generate call."),
    save_samples: Path | None = typer.Option(
        None,
        "--save-samples",
        help="Also write {id}_in.json, {id}_img.jpg and {id}_out.json per sample into this folder.",
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    retry_errors: bool = typer.Option(
        False, "--retry-errors", help="On resume, predict again the samples that failed before (as eval)."
    ),
    params=None,
    engine_options=None,
) -> None:
    """Answer one question (--image/--video + --question), or predict a dataset (--data + --out)."""
    from ..errors import ConfigError, VlmkitError
    from ..infer.predict import PredictionRun, single_question
    from ..infer.terminal import for_terminal
    from ..infer.vllm_launcher import fitted_to_data

    if data is None:
        if out is not None or slice_spec is not None or save_samples is not None:
            raise ConfigError("--out, --slice and --save-samples go with --data")
        if question is None:
            raise ConfigError("give --question (with --image/--video), or --data DIR --out FILE for a dataset")
        from ..distributed import current_world

        if current_world().distributed:  # every process would load the model and print the same answer
            raise ConfigError("one --question runs in one process: start it without torchrun / accelerate launch")
        request = single_question(image or (), video or (), question)
        _check_local_media(image or ())
        engine_options = fitted_to_data(engine_options, [request])  # --engine vllm: images per prompt
        engine = engine_options.load(model, adapter, batch_size=1)
        result = engine.generate([request], params)[0]
        if result.error:
            raise VlmkitError(result.error)
        typer.echo(for_terminal(result.text, sys.stdout))
        return
    if question is not None or image or video:
        raise ConfigError(
            "--question/--image/--video are for one question; with --data the questions come from the dataset"
        )
    if out is None:
        raise ConfigError("--data needs --out FILE (predictions.jsonl)")
    from ..distributed import per_rank_engine

    engine_options = per_rank_engine(engine_options)  # under torchrun: this rank's device; a remote engine refused
    # dataset, slice and resume are checked before the model loads
    run = PredictionRun(
        data,
        out,
        params,
        model=model,
        adapter=str(adapter) if adapter else None,
        engine_options=engine_options,
        slice_spec=slice_spec,
        retry_errors=retry_errors,
    )
    main = run.parallel.main  # under torchrun only rank 0 reports, for the whole job
    if not run.todo:
        if main:
            typer.echo(f"nothing to do: all {len(run.selected)} selected samples are already in {out}", err=True)
        run.close()
        return
    # --engine vllm: images per prompt from the data, its log beside the predictions (preds.jsonl -> preds.vllm.log)
    engine_options = fitted_to_data(engine_options, run.todo, out.with_suffix(".vllm.log"))
    try:
        engine = engine_options.load(model, adapter, batch_size=batch_size)
    except BaseException:
        run.close()
        raise
    summary = run.execute(engine, save_samples=save_samples, progress=not no_progress)
    if not main:
        return
    typer.echo(
        f"{summary.predicted} predicted ({summary.samples_per_s:.2f} samples/s), {summary.already_done} "
        f"already done, {len(summary.errors)} failed"
        + (" (--retry-errors predicts them again)" if summary.errors else "")
        + f" -> {summary.out}",
        err=True,
    )
    for sample_id, error in summary.errors[:5]:
        typer.echo(f"  {sample_id}: {error}", err=True)
    if len(summary.errors) > 5:
        typer.echo(f'  ... and {len(summary.errors) - 5} more (lines with "error" in {summary.out})', err=True)


@with_generation_options(256)
@with_engine_options()
def chat(
    model: str = MODEL,
    adapter: Path | None = ADAPTER,
    image: str | None = typer.Option(None, "--image", "-i", help="Image (path or URL) for the first message."),
    video: str | None = typer.Option(None, "--video", help="Video for the first message (Qwen families)."),
    system: str | None = typer.Option(None, "--system", help="System prompt."),
    params=None,
    engine_options=None,
) -> None:
    """Talk to a model in the terminal: streamed answers, history across turns, /image /video /reset /save /quit."""
    from ..infer.chat import ChatSession, chat_loop

    _check_local_media([image] if image else [])
    engine = engine_options.load(model, adapter, batch_size=1)
    session = ChatSession(engine, params, system=system)
    if image:
        session.attach_image(image)
    if video:
        session.attach_video(video)
    typer.echo(f"vlmkit chat: {engine.model_id} ({engine.family.name})" + (f" + adapter {adapter}" if adapter else ""))
    chat_loop(session)


# --- helpers --------------------------------------------------------------------------------------
def _check_local_media(images) -> None:
    """Open local images before loading the model, so a typo fails in a second, not after a minute of loading."""
    from ..data.media import load_image

    for source in images:
        if "://" not in source and not source.startswith("data:"):
            load_image(source)


def register(app: typer.Typer) -> None:
    app.command("infer")(infer)
    app.command("chat")(chat)
