"""The sweep report: SWEEP_DIR/report.md, report.json and plots from the study's trials.

A table of trials (parameters, trainable parameters, objective values, time, peak memory, state), the best
trial (or the Pareto front for several objectives), one plot of the objective(s) against each parameter
(for a LoRA-rank ablation: score and trainable parameters against rank) and parameter importances where
Optuna can compute them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..io import atomic_write_text, write_json
from ..markdown import md_table
from .spec import Sweep

PLOTS_DIR = "plots"


def _objective_names(sweep: Sweep) -> list[str]:
    names = []
    for objective in sweep.objectives:
        prefix = f"{Path(str(objective.task)).stem}:" if objective.task else ""
        names.append(f"{prefix}{objective.metric} ({'max' if objective.direction == 'maximize' else 'min'})")
    return names


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.4g}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def trial_rows(study: Any, sweep: Sweep) -> list[dict[str, Any]]:
    """One row per trial that ran (skipped grid look-ups left out)."""
    from .runner import decode

    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("skipped"):
            continue
        params = {k: decode(k, v, sweep.spec.space) for k, v in trial.params.items()}
        attrs = trial.user_attrs
        seconds = [attrs.get("train_s"), attrs.get("eval_s")]
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "params": params,
                "values": list(trial.values) if trial.values else None,
                "trainable_params": attrs.get("trainable_params"),
                "time_s": round(sum(s for s in seconds if s is not None), 2) if any(seconds) else None,
                "peak_memory_mb": attrs.get("peak_memory_mb"),
                "run_dir": attrs.get("run_dir"),
                "scores": attrs.get("scores"),
                "error": attrs.get("error"),
                "pruned_at_step": attrs.get("pruned_at_step"),
                "retry_of": attrs.get("retry_of"),
            }
        )
    return rows


def _best(study: Any, sweep: Sweep) -> list[int]:
    complete = [t for t in study.get_trials(deepcopy=False) if t.values]
    if not complete:
        return []
    return sorted(t.number for t in study.best_trials)


def _importances(study: Any, sweep: Sweep) -> dict[str, float] | None:
    """Optuna's parameter importances on the first objective; None when it cannot compute them."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.values]
    if len(complete) < 3 or len(sweep.spec.space) < 1:
        return None
    try:
        target = (lambda t: t.values[0]) if len(sweep.objectives) > 1 else None
        return {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(study, target=target).items()}
    except Exception:  # too few distinct values, or an evaluator that needs an extra package
        return None


def _plot_params(rows: list[dict[str, Any]], sweep: Sweep, out: Path) -> list[Path]:
    """The first objective (and trainable parameters, on a second axis) against each parameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["values"]]
    if not done:
        return []
    out.mkdir(parents=True, exist_ok=True)
    name = _objective_names(sweep)[0]
    paths = []
    for key in sweep.spec.space:
        xs = [r["params"].get(key) for r in done]
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
        labels = sorted({json.dumps(x) for x in xs}) if not numeric else None
        pos = xs if numeric else [labels.index(json.dumps(x)) for x in xs]
        fig, ax = plt.subplots(figsize=(6, 4))
        order = sorted(range(len(done)), key=lambda i: pos[i])
        ax.plot([pos[i] for i in order], [done[i]["values"][0] for i in order], "o-", color="tab:blue")
        ax.set_xlabel(key)
        ax.set_ylabel(name, color="tab:blue")
        if numeric and isinstance(sweep.spec.space[key], dict) and "log_uniform" in sweep.spec.space[key]:
            ax.set_xscale("log")
        if numeric and key.endswith("rank"):
            ax.set_xscale("log", base=2)
        if not numeric:
            ax.set_xticks(range(len(labels)), [label[:30] for label in labels], rotation=20, fontsize=7)
        trainable = [done[i]["trainable_params"] for i in order]
        if all(isinstance(v, int) for v in trainable):
            twin = ax.twinx()
            twin.plot([pos[i] for i in order], trainable, "s--", color="tab:orange")
            twin.set_ylabel("trainable parameters", color="tab:orange")
        ax.set_title(f"{name} vs {key}")
        fig.tight_layout()
        path = out / f"objective_vs_{key.replace('.', '_')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def write_sweep_report(study: Any, sweep: Sweep, out: Path, *, make_plots: bool = True) -> dict[str, Any]:
    """Write report.md / report.json (and plots) for the study's current state; returns the JSON."""
    rows = trial_rows(study, sweep)
    names = _objective_names(sweep)
    best = _best(study, sweep)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    result = {
        "name": sweep.name,
        "sampler": sweep.spec.sampler,
        "budget": sweep.budget,
        "objectives": names,
        "counts": counts,
        "best": best,
        "pareto_front": best if len(names) > 1 else None,
        "importances": _importances(study, sweep),
        "trials": rows,
    }
    plots = _plot_params(rows, sweep, out / PLOTS_DIR) if make_plots else []
    result["plots"] = [str(p.relative_to(out)) for p in plots]

    keys = list(sweep.spec.space)
    header = ["trial", "state", *keys, "trainable", *names, "time s", "peak MB"]
    body = []
    for row in rows:
        values = row["values"] or [None] * len(names)
        mark = " ★" if row["number"] in best else ""
        body.append(
            [
                f"{row['number']:03d}{mark}",
                row["state"] + (f" (step {row['pruned_at_step']})" if row["pruned_at_step"] else ""),
                *[_fmt(row["params"].get(k)) for k in keys],
                _fmt(row["trainable_params"]),
                *[_fmt(v) for v in values],
                _fmt(row["time_s"]),
                _fmt(row["peak_memory_mb"]),
            ]
        )
    lines = [f"# Sweep `{sweep.name}`", ""]
    lines.append(
        f"Sampler {sweep.spec.sampler}, budget {sweep.budget} trials; "
        + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        + "."
    )
    lines += ["", *md_table(header, body), ""]
    if best:
        label = "Pareto front (no trial is better on every objective)" if len(names) > 1 else "Best trial"
        lines.append(f"**{label}:** " + ", ".join(f"trial {n:03d}" for n in best) + " (★ in the table).")
        for number in best:
            row = next(r for r in rows if r["number"] == number)
            lines.append(f"- trial {number:03d}: `{row['run_dir']}`")
        lines.append("")
    if result["importances"]:
        lines += ["## Parameter importances", ""]
        lines += md_table(["parameter", "importance"], [[k, f"{v:.3f}"] for k, v in result["importances"].items()])
        lines.append("")
    failed = [r for r in rows if r["state"] == "fail" and r["error"]]
    if failed:
        lines += ["## Failed trials", ""] + [f"- trial {r['number']:03d}: {r['error']}" for r in failed] + [""]
    for plot in result["plots"]:
        lines.append(f"![{Path(plot).stem}]({plot})")
    lines += [
        "",
        "Each trial is a run folder under `trials/NNN` (config, adapter, manifest, `eval/`): "
        "`vlmkit compare SWEEP_DIR` puts their eval runs side by side.",
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))
    write_json(out / "report.json", result)
    return result
