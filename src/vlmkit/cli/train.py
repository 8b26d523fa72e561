"""CLI: `vlmkit train CONFIG [key=value ...]` and `vlmkit export RUN_DIR --out DIR`."""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    config: Path = typer.Argument(..., help="Run config (YAML); see configs/ and docs/training.md."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted overrides, e.g. lora.rank=16 train.max_steps=50."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in the run directory."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default: output_dir, else runs/<name>)."),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Discard a previous run in the run directory (checkpoints, final weights, logs, manifest) and start "
        "over; other files there stay.",
    ),
    check: bool = typer.Option(False, "--check", help="Validate the config, data and model family, then stop."),
) -> None:
    """Fine-tune a vision-language model (LoRA, QLoRA or full) as the config says; runs under torchrun too."""
    from ..train.runner import resolve_run_config

    run_config = resolve_run_config(config, overrides or [], out)
    if check:
        from ..train.preflight import preflight

        checked = preflight(run_config, resume=resume, overwrite=overwrite)
        typer.echo(
            f"ok: {checked.family.name} checkpoint, {len(checked.train_samples)} training samples, "
            f"{len(checked.eval_samples)} eval samples, run directory {checked.run_dir}"
        )
        from ..data.image_augment import describe as describe_augment

        typer.echo(describe_augment(run_config.data.augment))
        if run_config.data.packing:  # the processor (not the model) gives the exact lengths the rows are built from
            from ..errors import VlmkitError
            from ..train.packed import check_packing

            try:
                typer.echo(check_packing(run_config, checked))
            except VlmkitError as exc:  # a processor that cannot load is the model's problem, reported as such
                typer.echo(f"packing: rows not planned: {exc}")
        return
    from ..train import train as run_training

    result = run_training(run_config, resume=resume, overwrite=overwrite)
    if result.world_size == 1 or _is_main_process():
        loss = f"{result.final_loss:.4f}" if result.final_loss is not None else "n/a"
        typer.echo(f"done: {result.global_step} steps, final loss {loss}, saved to {result.final_dir}")


def export(
    run_dir: Path = typer.Argument(..., help="A finished run directory (from `vlmkit train`)."),
    out: Path = typer.Option(..., "--out", help="Folder for the merged checkpoint."),
    dtype: str | None = typer.Option(None, "--dtype", help="float32 | bfloat16 | float16 (default: the base's)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out folder."),
) -> None:
    """Merge the run's LoRA adapter into its base (a full fine-tune is re-saved) as a plain checkpoint."""
    from ..train.export import export_merged

    path = export_merged(run_dir, out, dtype=dtype, overwrite=overwrite)
    typer.echo(f"saved merged model to {path}")


def _is_main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("export")(export)
