"""`vlmkit ensemble`: combine several eval runs on the same task and data into one scored run by vote."""

from __future__ import annotations

from pathlib import Path

import typer


def ensemble_cmd(
    runs: list[Path] = typer.Argument(
        ..., help="Eval run folders (each with manifest.json and predictions.jsonl), same task and samples."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the ensemble's run (predictions, scores, report)."),
    weight: list[float] | None = typer.Option(
        None, "--weight", "-w", help="Vote weight per run, in the order given (repeat; default 1 each)."
    ),
    tie_break: str = typer.Option(
        "order",
        "--tie-break",
        help="How to settle a tied vote: 'order' (the first-listed run's answer), 'validation' (the member "
        "whose --rank-by validation run scored best), 'logprob' (highest mean_logprob in the rows; else order).",
    ),
    rank_by: list[Path] | None = typer.Option(
        None, "--rank-by", help="With --tie-break validation: one scored validation run per member, in order."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the files of an existing --out folder."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the report's PNG plots."),
) -> None:
    """Majority vote over normalised answers (over extracted option letters for multiple-choice rows), with
    optional weights. The result is a normal run folder: `vlmkit compare MEMBER... OUT` shows the ensemble
    beside its members with paired bootstrap intervals."""
    from ..eval.ensemble import ensemble_runs

    summary = ensemble_runs(
        runs,
        out,
        weights=weight or None,
        tie_break=tie_break,
        rank_by=rank_by or None,
        overwrite=overwrite,
        make_plots=not no_plots,
    )
    details = summary["ensemble"]
    primary = summary["primary"]
    typer.echo(
        f"ensemble of {len(details['members'])} runs on {details['samples']} samples: "
        f"{primary} {summary['overall'][primary]:.4f}; unanimous {details['unanimous']}, "
        f"ties broken ({details['tie_break']}) {details['ties_broken']}, "
        f"all members failed {details['all_members_failed']}"
    )
    for kind, path in summary.get("files", {}).items():
        typer.echo(f"wrote {kind}: {path}")


def register(app: typer.Typer) -> None:
    app.command("ensemble", help="Combine eval runs on the same task and data into one scored run by vote.")(
        ensemble_cmd
    )
