"""CLI: `vlmkit infer` (one question, or a whole dataset to predictions.jsonl) and `vlmkit chat`.

Thin layers over vlmkit.infer (predict_dataset, ChatSession/chat_loop); torch loads inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .engine_options import (
    ADAPTER,
    CONFIG,
    DEVICE,
    DTYPE,
    FPS,
    MAX_FRAMES,
    MAX_PIXELS,
    MIN_PIXELS,
    MODEL,
    NFRAMES,
    QUANTIZATION,
    engine_kwargs,
    media_settings,
)

# Generation options of both verbs (typer reads these descriptions; each command lists them in its signature).
MAX_NEW_TOKENS = typer.Option(None, "--max-new-tokens", help="Longest answer in tokens (infer: 64, chat: 256).")
DO_SAMPLE = typer.Option(False, "--sample/--greedy", help="Sample with temperature/top-p/top-k, or greedy decoding.")
TEMPERATURE = typer.Option(1.0, "--temperature", help="Sampling temperature (with --sample).")
TOP_P = typer.Option(1.0, "--top-p", help="Nucleus sampling mass (with --sample).")
TOP_K = typer.Option(0, "--top-k", help="Keep the K most likely tokens; 0 = off (with --sample).")
NUM_BEAMS = typer.Option(1, "--num-beams", help="Beam search width (1 = no beam search).")
REPETITION_PENALTY = typer.Option(1.0, "--repetition-penalty", help="Penalty > 1 discourages repeats.")
STOP = typer.Option(None, "--stop", help="Stop string; the answer ends before it. Repeat for several.")
SEED = typer.Option(None, "--seed", help="Seed for sampling.")


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
    max_new_tokens: int | None = MAX_NEW_TOKENS,
    do_sample: bool = DO_SAMPLE,
    temperature: float = TEMPERATURE,
    top_p: float = TOP_P,
    top_k: int = TOP_K,
    num_beams: int = NUM_BEAMS,
    repetition_penalty: float = REPETITION_PENALTY,
    stop: list[str] | None = STOP,
    seed: int | None = SEED,
    min_pixels: int | None = MIN_PIXELS,
    max_pixels: int | None = MAX_PIXELS,
    nframes: int | None = NFRAMES,
    fps: float | None = FPS,
    max_frames: int | None = MAX_FRAMES,
    config: Path | None = CONFIG,
    dtype: str = DTYPE,
    device: str | None = DEVICE,
    quantization: str | None = QUANTIZATION,
) -> None:
    """Answer one question (--image/--video + --question), or predict a dataset (--data + --out)."""
    from ..errors import ConfigError, VlmkitError
    from ..infer.predict import PredictionRun, single_question

    params = _params(
        64 if max_new_tokens is None else max_new_tokens,
        do_sample,
        temperature,
        top_p,
        top_k,
        num_beams,
        repetition_penalty,
        stop,
        seed,
    )
    media = media_settings(config, min_pixels, max_pixels, nframes, fps, max_frames)
    if data is None:
        if out is not None or slice_spec is not None or save_samples is not None:
            raise ConfigError("--out, --slice and --save-samples go with --data")
        if question is None:
            raise ConfigError("give --question (with --image/--video), or --data DIR --out FILE for a dataset")
        request = single_question(image or (), video or (), question)
        _check_local_media(image or ())
        engine = _load(model, adapter, dtype, device, 1, media, quantization)
        result = engine.generate([request], params)[0]
        if result.error:
            raise VlmkitError(result.error)
        typer.echo(result.text)
        return
    if question is not None or image or video:
        raise ConfigError(
            "--question/--image/--video are for one question; with --data the questions come from the dataset"
        )
    if out is None:
        raise ConfigError("--data needs --out FILE (predictions.jsonl)")
    # dataset, slice and resume are checked before the model loads
    run = PredictionRun(
        data,
        out,
        params,
        model=model,
        adapter=str(adapter) if adapter else None,
        media=media,
        slice_spec=slice_spec,
        quantization=quantization,
        retry_errors=retry_errors,
    )
    if not run.todo:
        typer.echo(f"nothing to do: all {len(run.selected)} selected samples are already in {out}", err=True)
        return
    engine = _load(model, adapter, dtype, device, batch_size, media, quantization)
    summary = run.execute(engine, save_samples=save_samples, progress=not no_progress)
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


def chat(
    model: str = MODEL,
    adapter: Path | None = ADAPTER,
    image: str | None = typer.Option(None, "--image", "-i", help="Image (path or URL) for the first message."),
    video: str | None = typer.Option(None, "--video", help="Video for the first message (Qwen families)."),
    system: str | None = typer.Option(None, "--system", help="System prompt."),
    max_new_tokens: int | None = MAX_NEW_TOKENS,
    do_sample: bool = DO_SAMPLE,
    temperature: float = TEMPERATURE,
    top_p: float = TOP_P,
    top_k: int = TOP_K,
    num_beams: int = NUM_BEAMS,
    repetition_penalty: float = REPETITION_PENALTY,
    stop: list[str] | None = STOP,
    seed: int | None = SEED,
    min_pixels: int | None = MIN_PIXELS,
    max_pixels: int | None = MAX_PIXELS,
    nframes: int | None = NFRAMES,
    fps: float | None = FPS,
    max_frames: int | None = MAX_FRAMES,
    config: Path | None = CONFIG,
    dtype: str = DTYPE,
    device: str | None = DEVICE,
    quantization: str | None = QUANTIZATION,
) -> None:
    """Talk to a model in the terminal: streamed answers, history across turns, /image /video /reset /save /quit."""
    from ..infer.chat import ChatSession, chat_loop

    params = _params(
        256 if max_new_tokens is None else max_new_tokens,
        do_sample,
        temperature,
        top_p,
        top_k,
        num_beams,
        repetition_penalty,
        stop,
        seed,
    )
    media = media_settings(config, min_pixels, max_pixels, nframes, fps, max_frames)
    _check_local_media([image] if image else [])
    engine = _load(model, adapter, dtype, device, 1, media, quantization)
    session = ChatSession(engine, params, system=system)
    if image:
        session.attach_image(image)
    if video:
        session.attach_video(video)
    typer.echo(f"vlmkit chat: {engine.model_id} ({engine.family.name})" + (f" + adapter {adapter}" if adapter else ""))
    chat_loop(session)


# --- helpers --------------------------------------------------------------------------------------
def _params(max_new_tokens, do_sample, temperature, top_p, top_k, num_beams, repetition_penalty, stop, seed):
    from ..infer import GenerationParams

    return GenerationParams(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        num_beams=num_beams,
        repetition_penalty=repetition_penalty,
        stop=tuple(stop or ()),
        seed=seed,
    )


def _check_local_media(images) -> None:
    """Open local images before loading the model, so a typo fails in a second, not after a minute of loading."""
    from ..data.media import load_image

    for source in images:
        if "://" not in source and not source.startswith("data:"):
            load_image(source)


def _load(model, adapter, dtype, device, batch_size, media, quantization):
    from ..infer import load_engine

    return load_engine(
        model,
        adapter=str(adapter) if adapter else None,
        batch_size=batch_size,
        **engine_kwargs(dtype, device, media, quantization),
    )


def register(app: typer.Typer) -> None:
    app.command("infer")(infer)
    app.command("chat")(chat)
