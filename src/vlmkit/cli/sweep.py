"""`vlmkit sweep`: run (or join) a sweep of training runs as an Optuna study, then report it."""

from __future__ import annotations

from pathlib import Path

import typer


def sweep_cmd(
    sweep_file: Path = typer.Argument(..., help="Sweep YAML: base config, space, objective(s), sampler, trials."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Sweep folder: trials/NNN run folders, study.db, report.md, plots/."
    ),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Optuna storage URL shared by workers on several machines (postgresql://, mysql://, sqlite:///); "
        "default: SWEEP_DIR/study.db. Start the same command N times to run N workers on one study.",
    ),
    max_trials: int | None = typer.Option(
        None, "--max-trials", help="This worker runs at most this many trials, then reports and exits."
    ),
    report_only: bool = typer.Option(False, "--report-only", help="Only (re)write the report of the study."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the report's PNG plots."),
) -> None:
    """Train and evaluate one trial after another (each a normal run folder under SWEEP_DIR/trials/NNN) until
    the grid is done or the budget is used, then write SWEEP_DIR/report.md. Rerunning continues the study;
    a trial whose worker died is failed after the grace period and retried. `vlmkit compare SWEEP_DIR`
    shows the trials' eval runs side by side."""
    import logging

    from ..sweep import load_sweep
    from ..sweep.report import write_sweep_report
    from ..sweep.runner import make_storage, open_study, require_optuna, run_worker

    require_optuna()
    logging.getLogger("optuna").setLevel(logging.WARNING)
    sweep = load_sweep(sweep_file)

    def show(trial, budget: int) -> None:  # noqa: ANN001
        values = ", ".join(f"{v:.4g}" for v in trial.values) if trial.values else trial.state.name.lower()
        params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
        error = f" ({trial.user_attrs['error']})" if trial.user_attrs.get("error") else ""
        typer.echo(f"trial {trial.number:03d} [{params}]: {values}{error}")

    if report_only:
        url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
        if storage is None and not (out / "study.db").exists():
            raise typer.BadParameter(f"{out} holds no study.db", param_hint="--out")
        study = open_study(sweep, make_storage(url, sweep))
    else:
        typer.echo(f"sweep {sweep.name}: sampler {sweep.spec.sampler}, budget {sweep.budget} trials -> {out}")
        study = run_worker(sweep, out, storage_url=storage, on_trial=show, max_trials=max_trials)
    result = write_sweep_report(study, sweep, out, make_plots=not no_plots)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result["counts"].items()))
    typer.echo(f"{counts}; best: {', '.join(f'trial {n:03d}' for n in result['best']) or 'none yet'}")
    typer.echo(f"wrote {out / 'report.md'}")


def register(app: typer.Typer) -> None:
    app.command("sweep", help="LoRA-rank ablations and hyper-parameter searches (Optuna), several workers at once.")(
        sweep_cmd
    )
