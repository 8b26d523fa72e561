"""report.md for a scored run: overall scores, speed and cost, per-group tables with bar charts, failure
analysis with examples, and the run manifest. Scores are shown x100 (the published convention)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from ..markdown import md_cell as md
from ..markdown import md_table
from . import plots
from .failures import LABELS

REPORT_FILE = "report.md"


def pct(value: Any) -> str:
    return "–" if value is None or value != value else f"{100 * value:.2f}"


_SHOWN_ZERO = 0.5e-4  # half of the 0.01 shown on the x100 scale


def delta_cell(stats: dict[str, Any]) -> str:
    """A delta with its bootstrap interval on the x100 scale: * when the interval excludes 0, † approximate."""
    mark = "†" if stats.get("approximate") else ""
    # Below display precision counts as 0: BLEU's smoothing leaves ~1e-9 scores on total misses.
    sig = "*" if stats["ci_low"] > _SHOWN_ZERO or stats["ci_high"] < -_SHOWN_ZERO else ""
    return f"{100 * stats['delta']:+.2f}{sig} [{100 * stats['ci_low']:+.2f}, {100 * stats['ci_high']:+.2f}]{mark}"


def _num(value: Any, fmt: str = "{:.3g}") -> str:
    return "–" if value is None else fmt.format(value)


def write_report(
    out_dir: str | Path,
    summary: dict[str, Any],
    *,
    manifest: dict[str, Any] | None = None,
    latencies: Sequence[float] = (),
    make_plots: bool = True,
    title: str | None = None,
) -> Path:
    out_dir = Path(out_dir)
    metrics = summary["metrics"]
    counts = summary["counts"]
    lines = [f"# {title or 'Evaluation'}: {summary['task']}", ""]
    if manifest and manifest.get("model"):
        lines += [
            f"Model `{manifest['model']}`"
            + (f", adapter `{manifest['adapter']}`" if manifest.get("adapter") else "")
            + ".",
            "",
        ]
    lines += [
        f"{counts['predictions']} predictions, {counts['scored']} scored, {counts['errors']} engine errors"
        + (" (re-run `vlmkit eval` with `--retry-errors` to predict them again)" if counts["errors"] else "")
        + ", "
        f"{counts['without_answers']} without reference answers. Scores x100; primary: "
        f"**{summary['primary']}**.",
        "",
    ]
    lines += [line for warning in summary.get("warnings", []) for line in (f"> **Warning:** {warning}", "")]

    lines += ["## Scores", ""]
    lines += md_table(
        ["metric", "score"],
        [
            [m, f"**{pct(summary['overall'][m])}**" if m == summary["primary"] else pct(summary["overall"][m])]
            for m in metrics
        ],
    )
    if summary.get("tokenizer"):
        lines += ["", f"Caption metrics tokenized with the `{summary['tokenizer']}` tokenizer."]
    lines += suite_lines(summary.get("suite"))
    extraction = summary.get("answer_extraction")
    if extraction:
        lines += [
            "",
            f"Answers read by the rule-based matcher: {extraction['rules']}; by the LLM judge: {extraction['judge']}"
            + ("" if extraction["judge_used"] else " (no judge)")
            + f"; undecided, scored wrong: {extraction['undecided']}.",
        ]

    lat, thr, cost = summary["latency"], summary["throughput"], summary["cost"]
    lines += ["", "## Speed and cost", ""]
    lines += md_table(
        ["engine", "latency p50", "latency p95", "samples/s", f"$ per 1,000 images ({cost_basis(cost)})"],
        [
            [
                md(engine_label(manifest)),
                _num(lat["p50_s"] and 1000 * lat["p50_s"], "{:.1f} ms"),
                _num(lat["p95_s"] and 1000 * lat["p95_s"], "{:.1f} ms"),
                _num(thr.get("samples_per_s"), "{:.2f}"),
                _num(cost.get("usd_per_1k_images"), "${:.4f}"),
            ]
        ],
    )
    hardware = ((manifest or {}).get("engine") or {}).get("hardware")
    lines += [
        "",
        (f"Measured on {md(hardware)}. " if hardware else "") + f"Throughput source: {thr['source']}. "
        "Latency is the wall time of the batch that produced the answer.",
    ]
    if "usd_total" in cost:
        lines += [
            "",
            f"Token-based cost: {cost['prompt_tokens']:,} prompt and {cost['completion_tokens']:,} completion tokens "
            f"as the endpoint counted them, ${cost['usd_total']:.4f} in total.",
        ]
    if make_plots and latencies:
        rel = "plots/latency.png"
        plots.latency_hist(latencies, out_dir / rel)
        lines += ["", f"![latency]({rel})"]

    for key, table in summary["groups"].items():
        lines += ["", f"## By {md(key)}", ""]
        rows = [[md(label, 50), row["n"], *(pct(row.get(m)) for m in metrics)] for label, row in table.items()]
        lines += md_table([md(key), "n", *metrics], rows)
        if make_plots and table:
            rel = f"plots/by_{plots.slug(key)}.png"
            plots.group_bars(key, table, summary["primary"], out_dir / rel)
            lines += ["", f"![{md(key)}]({rel})"]

    lines += _failure_section(summary.get("failures"), out_dir, make_plots)
    if manifest:
        lines += ["", "## Run", ""]
        lines += md_table(["", ""], [[md(k), f"`{md(v, 120)}`"] for k, v in _manifest_rows(manifest)])
    timing = summary.get("timing")
    if timing and timing.get("wall_s"):
        lines += [
            "",
            f"This invocation (until scoring): {timing['wall_s']:.2f} s wall, "
            f"{timing['model_s']:.2f} s inside the model, "
            f"{100 * timing['outside_model_share']:.1f} % outside it (data, prompts, writing, scoring).",
        ]
    path = out_dir / REPORT_FILE
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _failure_section(failures: dict[str, Any] | None, out_dir: Path, make_plots: bool) -> list[str]:
    if failures is None:
        return ["", "## Failure analysis", "", "Not applicable to this task (free-form output)."]
    lines = [
        "",
        "## Failure analysis",
        "",
        f"{failures['wrong']} of {failures['scored']} scored answers are wrong (primary score below "
        f"{failures['threshold']}).",
    ]
    if not failures["wrong"]:
        return lines
    lines += [""]
    rows = []
    for category, count in failures["counts"].items():
        example = (failures["examples"].get(category) or [{}])[0]
        shown = (
            f"{md(example.get('prediction', ''), 40)!s} ← {md(' / '.join(example.get('answers', [])[:2]), 40)}"
            if example
            else ""
        )
        rows.append([LABELS.get(category, category), count, f"{100 * count / failures['wrong']:.1f} %", shown])
    lines += md_table(["category", "count", "share of wrong", "example (predicted ← expected)"], rows)
    if make_plots:
        rel = "plots/failures.png"
        plots.failure_bars(failures["counts"], LABELS, out_dir / rel)
        lines += ["", f"![failures]({rel})"]
    lines += ["", "### Examples", ""]
    for category, examples in failures["examples"].items():
        for ex in examples:
            lines.append(
                f"- **{LABELS.get(category, category)}** `{md(ex['id'], 40)}`: Q: {md(ex['question'], 100)} "
                f"— predicted `{md(ex['prediction'], 60) or '(empty)'}`, expected "
                f"`{md(' / '.join(ex['answers'][:3]), 60)}`"
                + (f" (error: {md(ex['error'], 60)})" if ex.get("error") else "")
            )
    return lines


def _manifest_rows(manifest: dict[str, Any]) -> list[tuple[str, Any]]:
    rows = []
    for key in (
        "model",
        "adapter",
        "task",
        "prompt",
        "generation",
        "pixels",
        "media",
        "batch_size",
        "slice",
        "data",
        "data_hash",
        "samples",
        "created",
        "packages",
    ):
        value = manifest.get(key)
        if value in (None, "", {}):
            continue
        if key == "task" and isinstance(value, dict):
            value = value.get("name")
        if key == "packages" and isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items() if v)
        rows.append((key, value))
    return rows


def write_suite_summary(out_dir: str | Path, *, model: str, adapter: Any, runs: Sequence[tuple]) -> Path:
    """OUT/summary.md + summary.json for one model on several tasks: each task's primary score and folder.
    `runs` holds (task name, data path, run folder, scores summary) per task."""
    from ..io import write_json

    out = Path(out_dir)
    rows = [
        {
            "task": name,
            "data": str(data),
            "run": str(run_dir),
            "n": summary["counts"]["scored"],
            "metric": summary["primary"],
            "score": summary["overall"][summary["primary"]],
            "overall": summary["overall"],
        }
        for name, data, run_dir, summary in runs
    ]
    write_json(out / "summary.json", {"model": model, "adapter": str(adapter) if adapter else None, "tasks": rows})
    lines = [
        f"# {md(model)}" + (f" + {md(adapter)}" if adapter else ""),
        "",
        *md_table(
            ["task", "n", "metric", "score", "run"],
            [
                [row["task"], row["n"], row["metric"], pct(row["score"]), f"`{md(Path(row['run']).name)}`"]
                for row in rows
            ],
        ),
        "",
        "Scores x100; each task's full report is `report.md` in its run folder.",
    ]
    return atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")


def engine_label(manifest: dict[str, Any] | None) -> str:
    """How a run's engine is named in reports and comparisons: `openai:gpt-4o` for an endpoint, else `hf`."""
    engine = (manifest or {}).get("engine") or {}
    if engine.get("label"):
        return str(engine["label"])
    return str(engine.get("backend") or "hf")


def cost_basis(cost: dict[str, Any]) -> str:
    """What a cost figure rests on: the endpoint's tokens at the given prices, or hardware time at $/hour."""
    if "usd_total" in cost:
        prices = [f"${p:g}" if p is not None else "–" for p in (cost.get("price_input"), cost.get("price_output"))]
        return f"tokens at {prices[0]} / {prices[1]} per 1M in / out"
    return f"at ${cost.get('usd_per_hour')}/h"


def suite_lines(suite: dict[str, Any] | None) -> list[str]:
    """The benchmark's own aggregates (eval/tasks/suites.py): MMBench circular, POPE F1, MME totals."""
    if not suite:
        return []

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.2f}" if value > 1.0 else pct(value)
        return str(value)

    lines = ["", f"### {suite['name']} scores (as its reference script computes them)", ""]
    lines += md_table(["score", "value"], [[k, cell(v)] for k, v in suite["overall"].items()])
    for key, table in suite.get("tables", {}).items():
        columns = list(next(iter(table.values()), {}))
        lines += ["", f"By {md(key)}:", ""]
        lines += md_table(
            [md(key), *columns], [[md(label), *[cell(row[c]) for c in columns]] for label, row in table.items()]
        )
    return lines
