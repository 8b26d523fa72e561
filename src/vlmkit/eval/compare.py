"""Compare scored runs side by side (base vs fine-tuned, a LoRA-rank ablation, ...).

The first run is the base. For every other run and metric: the score, the delta to the base and a paired
bootstrap confidence interval over the samples both runs scored (matched by id). For corpus BLEU and METEOR
the interval comes from per-sample scores and is shifted onto the corpus delta (marked approximate).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import VlmkitError
from ..io import iter_jsonl, write_json
from ..markdown import md_cell as md
from ..markdown import md_table
from .compare_groups import group_deltas, groups_markdown
from .manifest import MANIFEST_FILE
from .report import delta_cell, engine_label, pct
from .scorefile import SAMPLE_SCORES_FILE, SCORES_FILE
from .stats import paired_delta

APPROXIMATE = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor")


@dataclass
class Run:
    name: str
    path: Path
    summary: dict[str, Any]
    samples: dict[str, dict[str, float]]
    manifest: dict[str, Any] | None


def load_run(path: str | os.PathLike, name: str | None = None) -> Run:
    path = Path(path)
    scores = path / SCORES_FILE
    if not scores.exists():
        hint = (
            " (it has predictions.jsonl: run `vlmkit score` on it first)"
            if (path / "predictions.jsonl").exists()
            else ""
        )
        raise VlmkitError(f"{path} is not a scored run: no {SCORES_FILE}{hint}")
    summary = json.loads(scores.read_text(encoding="utf-8"))
    samples = {}
    sample_file = path / SAMPLE_SCORES_FILE
    if not sample_file.exists():
        raise VlmkitError(f"{path}: no {SAMPLE_SCORES_FILE}; re-run `vlmkit score` to create it")
    for _, row in iter_jsonl(sample_file):
        if row.get("scores"):
            samples[str(row["id"])] = row["scores"]
    manifest = None
    if (path / MANIFEST_FILE).exists():
        manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
    return Run(name or path.name, path, summary, samples, manifest)


def expand_sweeps(
    paths: Sequence[str | os.PathLike], names: Sequence[str] | None
) -> tuple[list[Path], list[str] | None]:
    """A sweep folder (with sweep.json) stands for its trials' scored eval runs, named by trial number."""
    out_paths: list[Path] = []
    out_names: list[str] = []
    for i, raw in enumerate(paths):
        path = Path(raw)
        if not (path / "sweep.json").exists():
            out_paths.append(path)
            out_names.append(names[i] if names else path.name)
            continue
        found = []
        for trial_dir in sorted(d for d in (path / "trials").glob("*") if d.is_dir()):
            eval_dir = trial_dir / "eval"
            if (eval_dir / SCORES_FILE).exists():
                found.append((eval_dir, f"trial {trial_dir.name}"))
            else:  # several objective tasks: one eval run per task
                found += [
                    (s.parent, f"trial {trial_dir.name} {s.parent.name}")
                    for s in sorted(eval_dir.glob(f"*/{SCORES_FILE}"))
                ]
        if not found:
            raise VlmkitError(f"{path} is a sweep with no scored trial yet")
        out_paths += [run for run, _ in found]
        out_names += [label for _, label in found]
    explicit = names is not None or any((Path(p) / "sweep.json").exists() for p in paths)
    return out_paths, out_names if explicit else None


def compare_runs(
    paths: Sequence[str | os.PathLike],
    *,
    names: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    paths, names = expand_sweeps(paths, names)
    if len(paths) < 2:
        raise VlmkitError("compare needs at least two run folders (the first is the base)")
    if names and len(names) != len(paths):
        raise VlmkitError(f"{len(names)} names for {len(paths)} runs")
    runs = [load_run(p, names[i] if names else None) for i, p in enumerate(paths)]
    if len({r.name for r in runs}) < len(runs):
        runs = [Run(f"{r.name} ({r.path})", r.path, r.summary, r.samples, r.manifest) for r in runs]
    base = runs[0]
    shared = [m for m in base.summary["metrics"] if all(m in r.summary["metrics"] for r in runs[1:])]
    if metrics:
        missing = [m for m in metrics if m not in shared]
        if missing:
            raise VlmkitError(f"metric(s) {missing} not scored in every run (shared: {', '.join(shared) or 'none'})")
        shared = list(metrics)
    if not shared:
        raise VlmkitError("the runs share no metric; compare runs of the same task")
    tasks = sorted({r.summary.get("task") for r in runs})
    bootstrap = {"resamples": resamples, "seed": seed, "confidence": confidence}
    rows = []
    for run in runs:
        manifest = run.manifest or {}
        row: dict[str, Any] = {
            "name": run.name,
            "path": str(run.path),
            "task": run.summary.get("task"),
            "n": run.summary["counts"]["scored"],
            "overall": {m: run.summary["overall"].get(m) for m in shared},
            "latency_p50_s": run.summary["latency"].get("p50_s"),
            "samples_per_s": run.summary["throughput"].get("samples_per_s"),
            "usd_per_1k_images": run.summary["cost"].get("usd_per_1k_images"),
            "cost_basis": "tokens" if "usd_total" in run.summary["cost"] else "usd_per_hour",
            "engine": engine_label(manifest),
            "model": manifest.get("model"),
            "hardware": (manifest.get("engine") or {}).get("hardware"),
            "adapter": manifest.get("adapter"),
            "training": adapter_facts(manifest.get("adapter_dir") or manifest.get("adapter")),
            "deltas": {},
        }
        if run is not base:
            common = [i for i in base.samples if i in run.samples]
            if not common:
                raise VlmkitError(f"runs '{base.name}' and '{run.name}' have no scored sample id in common")
            row["common"] = len(common)
            for metric in shared:
                corpus_delta = (
                    row["overall"][metric] - base.summary["overall"][metric] if metric in APPROXIMATE else None
                )
                row["deltas"][metric] = paired_delta(
                    [base.samples[i][metric] for i in common],
                    [run.samples[i][metric] for i in common],
                    corpus_delta=corpus_delta,
                    **bootstrap,
                )
        rows.append(row)
    return {
        "base": base.name,
        "tasks": tasks,
        "metrics": shared,
        "runs": rows,
        "groups": group_deltas(runs, shared[0], approximate=shared[0] in APPROXIMATE, **bootstrap),
        "bootstrap": bootstrap,
    }


def adapter_facts(adapter: str | None) -> dict[str, Any] | None:
    """LoRA rank and trainable parameters of the run that made an adapter (adapter_config.json, and the
    training run's manifest.json one folder up), so an ablation table shows what each row changed."""
    if not adapter or not (Path(adapter) / "adapter_config.json").is_file():
        return None
    try:
        config = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
        facts: dict[str, Any] = {"lora_rank": config.get("r"), "lora_alpha": config.get("lora_alpha")}
        train_manifest = Path(adapter).parent / MANIFEST_FILE
        if train_manifest.is_file():
            parameters = json.loads(train_manifest.read_text(encoding="utf-8")).get("parameters") or {}
            facts["trainable_params"] = (parameters.get("all") or {}).get("trainable")
    except (OSError, ValueError, AttributeError):  # an unreadable file costs the columns, not the comparison
        return None
    return facts


def _params(count: int | None) -> str:
    if count is None:
        return "–"
    return f"{count / 1e6:.2f}M" if count >= 1e5 else f"{count / 1e3:.1f}k"


def table_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "n"]
    for metric in result["metrics"]:
        header += [metric, f"Δ {metric}"]
    header += ["p50 latency", "samples/s", "$/1K images"]
    hardware = len({run.get("hardware") for run in result["runs"]}) > 1  # only worth a column when it varies
    engines = any(run.get("engine", "hf") != "hf" for run in result["runs"])  # an endpoint among the runs
    if engines:
        header.insert(len(header) - 3, "engine")
    if hardware:
        header.insert(len(header) - 3, "hardware")
    adapters = any(run.get("training") for run in result["runs"])
    if adapters:
        header[2:2] = ["LoRA r", "trainable"]
    rows = []
    for run in result["runs"]:
        cells = [md(run["name"], 40), str(run["n"])]
        if adapters:
            facts = run.get("training") or {}
            cells += [str(facts.get("lora_rank") or "–"), _params(facts.get("trainable_params"))]
        for metric in result["metrics"]:
            cells.append(pct(run["overall"][metric]))
            cells.append(delta_cell(run["deltas"][metric]) if metric in run["deltas"] else "base")
        p50 = run["latency_p50_s"]
        if engines:
            cells.append(md(run.get("engine") or "hf", 40))
        if hardware:
            cells.append(md(run.get("hardware") or "–", 30))
        cells += [
            f"{1000 * p50:.1f} ms" if p50 is not None else "–",
            f"{run['samples_per_s']:.2f}" if run["samples_per_s"] else "–",
            _cost_cell(run),
        ]
        rows.append(cells)
    return header, rows


def _cost_cell(run: dict[str, Any]) -> str:
    """$ per 1,000 images, marked by what it rests on when runs differ: API tokens or hardware $/hour."""
    if run["usd_per_1k_images"] is None:
        return "–"
    return f"${run['usd_per_1k_images']:.4f}" + (" (tokens)" if run.get("cost_basis") == "tokens" else "")


def compare_markdown(result: dict[str, Any]) -> str:
    header, rows = table_rows(result)
    conf = int(100 * result["bootstrap"]["confidence"])
    lines = [f"# Comparison ({', '.join(t or '?' for t in result['tasks'])})", "", *md_table(header, rows)]
    lines += [
        "",
        f"Scores x100. Δ is each run minus the base (`{md(result['base'])}`) with a {conf} % paired "
        f"bootstrap interval ({result['bootstrap']['resamples']} resamples over the samples both runs scored); "
        "* marks an interval that excludes 0; † marks an approximate interval (corpus BLEU/METEOR).",
    ]
    for run in result["runs"][1:]:
        if run.get("common") is not None and run["common"] < max(run["n"], result["runs"][0]["n"]):
            lines.append(f"- `{md(run['name'])}` was compared on the {run['common']} samples both runs scored.")
    lines += groups_markdown(result)
    return "\n".join(lines) + "\n"


def compare_png(result: dict[str, Any], path: Path) -> Path:
    """The table as an image, above a bar chart of the first metric with the delta intervals."""
    from . import plots

    plt = plots.pyplot()
    header, rows = table_rows(result)
    metric = result["metrics"][0]
    runs = result["runs"]
    fig, (ax_table, ax_bar) = plt.subplots(
        2,
        1,
        figsize=(max(8, 1.4 * len(header)), 2.2 + 0.45 * len(rows) + 3),
        gridspec_kw={"height_ratios": [0.6 + 0.3 * len(rows), 3]},
    )
    ax_table.axis("off")
    table = ax_table.table(cellText=rows, colLabels=header, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(col=list(range(len(header))))
    table.scale(1, 1.3)
    values = [100 * (r["overall"][metric] or 0) for r in runs]
    errors = [[0, 0]] + [
        [
            100 * (r["deltas"][metric]["delta"] - r["deltas"][metric]["ci_low"]),
            100 * (r["deltas"][metric]["ci_high"] - r["deltas"][metric]["delta"]),
        ]
        for r in runs[1:]
    ]
    ax_bar.bar(
        range(len(runs)), values, yerr=list(zip(*errors)), capsize=6, color=["#8C8C8C"] + ["#4C72B0"] * (len(runs) - 1)
    )
    ax_bar.set_xticks(range(len(runs)), [r["name"][:24] for r in runs], rotation=15)
    ax_bar.set_ylabel(f"{metric} (x100)")
    conf = int(100 * result["bootstrap"]["confidence"])
    ax_bar.set_title(f"{metric}: whiskers = {conf} % CI of the delta to the base")
    return plots.save_figure(fig, path)


def compare(
    paths: Sequence[str | os.PathLike],
    *,
    out_dir: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    make_png: bool = True,
) -> dict[str, Any]:
    """Compare runs; with out_dir, write compare.md, compare.json and compare.png there."""
    result = compare_runs(paths, names=names, metrics=metrics, resamples=resamples, seed=seed, confidence=confidence)
    result["markdown"] = compare_markdown(result)
    if out_dir is not None:
        from ..io import atomic_write_text

        out = Path(out_dir)
        files = {
            "markdown": atomic_write_text(out / "compare.md", result["markdown"]),
            "json": write_json(out / "compare.json", {k: v for k, v in result.items() if k != "markdown"}),
        }
        if make_png:
            files["png"] = compare_png(result, out / "compare.png")
        result["files"] = {k: str(v) for k, v in files.items()}
    return result
