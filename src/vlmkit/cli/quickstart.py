"""CLI: `vlmkit quickstart`, the offline end-to-end demo (a thin layer over vlmkit.quickstart.run_quickstart)."""

from __future__ import annotations

from pathlib import Path

import typer


def quickstart(
    out: Path = typer.Option(
        Path("quickstart"), "--out", "-o", help="Output folder: data, checkpoints, runs, evaluations and report.md."
    ),
    from_scratch: bool = typer.Option(
        False,
        "--from-scratch",
        help="Train the English base here (tiny Qwen2-VL "
        "+ full training) instead of starting from the shipped base checkpoint.",
    ),
    train_base: bool = typer.Option(
        False,
        "--train-base",
        help="Like --from-scratch, then replace the base checkpoint shipped in the package with the one trained here.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the data, the tiny model and training."),
    train_images: int | None = typer.Option(
        None,
        "--train-images",
        help="Training images per language for the fine-tune (default 16000; English replay draws from them).",
    ),
    base_train_images: int | None = typer.Option(
        None, "--base-train-images", help="English training images when the base is trained here (default 48000)."
    ),
    test_images: int | None = typer.Option(
        None, "--test-images", help="Held-out test images, one question each (default 300)."
    ),
    base_set: list[str] | None = typer.Option(
        None, "--base-set", help="Override the base training config, e.g. --base-set train.max_steps=900 (repeatable)."
    ),
    finetune_set: list[str] | None = typer.Option(
        None, "--finetune-set", help="Override the fine-tune config, e.g. --finetune-set lora.rank=8 (repeatable)."
    ),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display; only the final table."),
) -> None:
    """Offline demo on a laptop CPU: ShapesVQA data, an English base, a Vietnamese LoRA fine-tune, eval before and
    after, compare and a report (OUT/report.md, report.json, plots). Every number comes from `vlmkit eval` on
    held-out images. About 2 min on 2 cores from the shipped base; about 4 min with --from-scratch."""
    from rich.console import Console

    from ..quickstart import QuickstartOptions, ShapesConfig, run_quickstart
    from ..quickstart.report import summary_table

    default = ShapesConfig()
    shapes = ShapesConfig(
        train_images=train_images or default.train_images,
        base_train_images=base_train_images or default.base_train_images,
        test_images=test_images or default.test_images,
    )
    options = QuickstartOptions(
        out=out,
        seed=seed,
        from_scratch=from_scratch,
        train_base=train_base,
        shapes=shapes,
        base_overrides=list(base_set or []),
        finetune_overrides=list(finetune_set or []),
        threads=threads,
    )
    report = run_quickstart(options, show_progress=not quiet)
    console = Console()
    console.print(summary_table(report))
    console.print(f"report: {Path(report['artefacts']['base']).parent / 'report.md'}")
    console.print(f"chat with the result:\n  {report['chat_command']}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
