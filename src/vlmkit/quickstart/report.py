"""The quickstart report: OUT/report.json (numbers), OUT/report.md (for people) and PNGs under OUT/plots/.

Every accuracy here is read from the evaluator's scores.json (exact match on held-out test images); nothing
is recomputed, so the report can never disagree with `vlmkit eval`.
"""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path
from typing import Any

from ..io import atomic_write_text, write_json
from ..markdown import md_cell as md
from ..markdown import md_table
from ..plotting import pyplot, save_figure
from .shapes import LANGS, QUESTION_TYPES

# (model, language) -> (comparison, threshold): the targets for the default run.
TARGETS = {
    ("base", "en"): (">=", 0.85),
    ("base", "vi"): ("<=", 0.25),
    ("tuned", "vi"): (">=", 0.80),
    ("tuned", "en"): (">=", 0.80),
}
MODELS = ("base", "tuned")
LANG_NAMES = {"en": "English", "vi": "Vietnamese"}
N_EXAMPLES = 5


def accuracy(summary: dict[str, Any]) -> float:
    return float(summary["overall"]["exact_match"])


def by_question_type(summary: dict[str, Any]) -> dict[str, float]:
    groups = summary.get("groups", {}).get("question_type", {})
    return {kind: float(groups[kind]["exact_match"]) for kind in QUESTION_TYPES if kind in groups}


def target_checks(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    out = {}
    for (model, lang), (op, threshold) in TARGETS.items():
        value = scores[model][lang]
        met = value >= threshold if op == ">=" else value <= threshold
        out[f"{model}_{lang}"] = {"value": value, "target": f"{op} {threshold}", "met": met}
    return out


def chat_command(layout: Any, image: str | None) -> str:
    parts = ["vlmkit", "chat", "--model", str(layout.base), "--adapter", str(layout.adapter)]
    if image:
        parts += ["--image", image]
    return shlex.join(parts)


def rerun_commands(layout: Any, options: Any) -> list[str]:
    """The ordinary-verb commands that redo the fine-tune, the tuned evaluation and the comparison by hand, with
    this run's seed and overrides; each replaces what the quickstart wrote there (--overwrite)."""
    train = [
        "vlmkit",
        "train",
        str(layout.configs / "finetune.yaml"),
        f"train.seed={options.seed}",
        *options.finetune_overrides,
        "--out",
        str(layout.run("finetune")),
        "--overwrite",
    ]
    evaluate = [
        "vlmkit",
        "eval",
        "--task",
        str(layout.task),
        "--model",
        str(layout.base),
        "--adapter",
        str(layout.adapter),
        "--data",
        str(layout.data("vi-test")),
        "--out",
        str(layout.eval("tuned", "vi")),
        "--overwrite",
    ]
    compare = ["vlmkit", "compare", str(layout.eval("base", "vi")), str(layout.eval("tuned", "vi"))]
    return [shlex.join(command) for command in (train, evaluate, compare)]


# --- the report -------------------------------------------------------------------------------------
def build_report(
    layout: Any,
    *,
    options: Any,
    data: dict[str, Any],
    base: dict[str, Any],
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    finetune: Any,
    compared: dict[str, Any],
) -> dict[str, Any]:
    """The report's numbers, with its plots written to OUT/plots/; `save_report` writes the files once the
    run's times are final."""
    summaries = {"base": before, "tuned": after}
    scores = {model: {lang: accuracy(summaries[model][lang]) for lang in LANGS} for model in MODELS}
    plots_dir = layout.out / "plots"
    finetune_losses = [[row["step"], row["loss"]] for row in finetune.log_history if "loss" in row]
    base_losses = (base.get("training") or {}).get("losses") or []
    examples = pick_examples(layout)
    plots = {
        "learning_curves": learning_curves_png(
            {"base (full, English)": base_losses, "fine-tune (LoRA, Vietnamese + English replay)": finetune_losses},
            plots_dir / "learning_curves.png",
        ),
        "accuracy_by_question_type": accuracy_png(summaries, plots_dir / "accuracy_by_question_type.png"),
        "examples": examples_png(examples, plots_dir / "examples.png"),
    }
    report: dict[str, Any] = {
        **scores,
        "numbers_from": "vlmkit eval, task shapes_vqa: exact match on held-out test images (never trained on)",
        "base_source": base["source"],
        "seed": options.seed,
        "targets": target_checks(scores),
        "by_question_type": {
            model: {lang: by_question_type(summaries[model][lang]) for lang in LANGS} for model in MODELS
        },
        "test_samples": {lang: before[lang]["counts"]["scored"] for lang in LANGS},
        "compare": {lang: compared[lang]["delta"] for lang in LANGS},
        "data": data,
        "training": {
            "base": _without_losses(base.get("training")),
            "finetune": {
                "steps": finetune.global_step,
                "final_loss": finetune.final_loss,
                "samples_per_second": finetune.samples_per_second,
                "parameters": finetune.parameters,
                "run_dir": str(finetune.run_dir),
            },
        },
        "examples": examples,
        "stages_s": {},
        "wall_s": None,
        "peak_rss_mb": None,  # filled in when the run ends
        "artefacts": {
            "base": str(layout.base),
            "adapter": str(layout.adapter),
            "configs": str(layout.configs),
            "data": {name: str(layout.data(name)) for name in data["datasets"]},
            "eval": {f"{model}-{lang}": str(layout.eval(model, lang)) for model in MODELS for lang in LANGS},
            "compare": {lang: compared[lang]["files"] for lang in LANGS},
            "plots": {name: str(path) for name, path in plots.items()},
        },
        "chat_command": chat_command(layout, examples[0]["image"] if examples else None),
        "rerun_commands": rerun_commands(layout, options),
    }
    return report


def save_report(report: dict[str, Any], compared: dict[str, Any], layout: Any) -> None:
    write_json(layout.out / "report.json", report)
    atomic_write_text(layout.out / "report.md", markdown(report, compared, layout))


def _without_losses(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {k: v for k, v in record.items() if k not in ("losses", "config")}


# --- examples ---------------------------------------------------------------------------------------
def pick_examples(layout: Any, count: int = N_EXAMPLES) -> list[dict[str, Any]]:
    """The first `count` test images (the test split cycles through the question types), asked in both
    languages, with the reference and both models' answers."""
    from ..eval.predictions import read_predictions

    predictions = {
        (model, lang): {r.id: r for r in read_predictions(layout.eval(model, lang))}
        for model in MODELS
        for lang in LANGS
    }
    images = {s.meta["image_id"]: s.media("image")[0] for s in _test_samples(layout, count)}
    examples = []
    for image_id, image in images.items():
        first = predictions[("base", "vi")][f"{image_id}-vi"]
        example: dict[str, Any] = {"image_id": image_id, "question_type": first.meta["question_type"], "image": image}
        for lang in LANGS:
            record = predictions[("base", lang)][f"{image_id}-{lang}"]
            example[lang] = {
                "question": record.question,
                "answer": record.answers[0],
                **{model: predictions[(model, lang)][f"{image_id}-{lang}"].prediction for model in MODELS},
            }
        examples.append(example)
    return examples


def _test_samples(layout: Any, count: int) -> list[Any]:
    import itertools

    from ..data.schema import iter_samples

    return list(itertools.islice(iter_samples(layout.data("vi-test")), count))


# --- plots ------------------------------------------------------------------------------------------
def learning_curves_png(curves: dict[str, list[list[float]]], path: Path) -> Path:
    plt = pyplot()
    shown = {name: points for name, points in curves.items() if points}
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(5.5 * max(1, len(shown)), 3.6), squeeze=False)
    for ax, (name, points) in zip(axes[0], shown.items()):
        steps, losses = zip(*points)
        ax.plot(steps, losses, marker="." if len(points) < 30 else None)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("training loss (answer tokens)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if not shown:
        axes[0][0].text(0.5, 0.5, "no training logged", ha="center", va="center")
        axes[0][0].axis("off")
    return save_figure(fig, path)


def accuracy_png(summaries: dict[str, dict[str, dict[str, Any]]], path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(LANGS), figsize=(11, 3.8), sharey=True)
    labels = [*QUESTION_TYPES, "all"]
    width = 0.38
    for ax, lang in zip(axes, LANGS):
        for offset, (model, color) in zip((-width / 2, width / 2), zip(MODELS, ("#8C8C8C", "#4C72B0"))):
            types = by_question_type(summaries[model][lang])
            values = [100 * types.get(kind, 0.0) for kind in QUESTION_TYPES] + [100 * accuracy(summaries[model][lang])]
            bars = ax.bar([i + offset for i in range(len(labels))], values, width, label=model, color=color)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_title(f"{LANG_NAMES[lang]} test questions", fontsize=10)
        ax.set_ylim(0, 110)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("exact match (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(MODELS), fontsize=8, bbox_to_anchor=(0.5, -0.04))
    return save_figure(fig, path)


def examples_png(examples: list[dict[str, Any]], path: Path) -> Path:
    from PIL import Image

    plt = pyplot()
    fig, axes = plt.subplots(1, max(1, len(examples)), figsize=(3.3 * max(1, len(examples)), 4.6), squeeze=False)
    for ax, example in zip(axes[0], examples):
        with Image.open(example["image"]) as image:
            ax.imshow(image.convert("RGB"))
        ax.set_xticks([])
        ax.set_yticks([])
        lines = []
        for lang in LANGS:
            row = example[lang]
            lines += [
                textwrap.fill(row["question"], 30),
                f"  reference: {row['answer']}",
                f"  base:  {row['base'] or '∅'} {_mark(row['base'], row['answer'])}",
                f"  tuned: {row['tuned'] or '∅'} {_mark(row['tuned'], row['answer'])}",
            ]
        ax.set_xlabel("\n".join(lines), fontsize=8, loc="left", family="DejaVu Sans")
    return save_figure(fig, path)


def _mark(prediction: str, answer: str) -> str:
    from ..metrics.text import exact_match

    return "✓" if exact_match(prediction, [answer]) else "✗"


# --- markdown and terminal --------------------------------------------------------------------------
def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def markdown(report: dict[str, Any], compared: dict[str, Any], layout: Any) -> str:
    def rel(path: str | Path) -> str:
        return str(Path(path).relative_to(layout.out)) if Path(path).is_relative_to(layout.out) else str(path)

    lines = [
        "# vlmkit quickstart report",
        "",
        f"Base model: **{report['base_source']}**"
        + (
            " (the checkpoint shipped with vlmkit, trained by `vlmkit quickstart --train-base`)"
            if report["base_source"] == "shipped"
            else " (trained in this run)"
        )
        + f"; seed {report['seed']}. All accuracies: {report['numbers_from']}.",
        "",
    ]
    rows = []
    for model in MODELS:
        cells = []
        for lang in LANGS:
            check = report["targets"][f"{model}_{lang}"]
            cells.append(f"{_pct(check['value'])} ({'✓' if check['met'] else '✗'} target {check['target']})")
        rows.append(["base" if model == "base" else "base + Vietnamese LoRA", *cells])
    lines += md_table(["model", "English", "Vietnamese"], rows)
    lines += [
        "",
        f"Test questions: {report['test_samples']['en']} per language, on "
        f"{report['data']['config']['test_images']} held-out images.",
        "",
        "## Accuracy per question type",
        "",
    ]
    lines += md_table(
        ["model", "language", *QUESTION_TYPES],
        [
            [model, lang, *(_pct(report["by_question_type"][model][lang].get(k, 0.0)) for k in QUESTION_TYPES)]
            for model in MODELS
            for lang in LANGS
        ],
    )
    lines += [
        "",
        f"![accuracy per question type]({rel(report['artefacts']['plots']['accuracy_by_question_type'])})",
        "",
        "## Base vs tuned (`vlmkit compare`)",
        "",
    ]
    for lang in LANGS:
        body = compared[lang]["markdown"].replace("# Comparison", f"### {LANG_NAMES[lang]}: comparison", 1)
        lines += [body.rstrip(), ""]
    lines += ["## Training", "", f"![learning curves]({rel(report['artefacts']['plots']['learning_curves'])})", ""]
    base_training = report["training"]["base"]
    if base_training:
        lines.append(
            f"- base: {base_training.get('steps')} steps of full training on "
            f"{base_training.get('train_samples')} English samples, final loss "
            f"{_num(base_training.get('final_loss'))} (`{base_training.get('command')}`)"
        )
    ft = report["training"]["finetune"]
    lines += [
        f"- fine-tune: {ft['steps']} LoRA steps, final loss {_num(ft['final_loss'])}, "
        f"{_num(ft['samples_per_second'])} samples/s; run folder `{rel(ft['run_dir'])}`",
        "",
        "## Examples (held-out images)",
        "",
        f"![examples]({rel(report['artefacts']['plots']['examples'])})",
        "",
    ]
    lines += md_table(
        ["image", "question", "reference", "base", "tuned"],
        [
            [example["image_id"], *(md(example[lang][k]) for k in ("question", "answer", "base", "tuned"))]
            for example in report["examples"]
            for lang in LANGS
        ],
    )
    lines += ["", "## Time and memory", ""]
    lines += md_table(
        ["stage", "seconds"],
        [
            *((stage, f"{seconds:.1f}") for stage, seconds in report["stages_s"].items()),
            ("**total (wall)**", f"**{report['wall_s']:.1f}**"),
        ],
    )
    lines += [
        "",
        f"Peak resident memory: {report['peak_rss_mb']:.0f} MB.",
        "",
        "## Next",
        "",
        "Chat with the result:",
        "",
        "```",
        report["chat_command"],
        "```",
        "",
        "Re-run a stage by hand (the configs this run used are in `configs/`):",
        "",
        "```",
        *report["rerun_commands"],
        "```",
        "",
    ]
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else "–"


def summary_table(report: dict[str, Any]) -> Any:
    """The final table printed in the terminal."""
    from rich.table import Table

    table = Table(title="vlmkit quickstart: exact match on held-out images")
    table.add_column("model")
    for lang in LANGS:
        table.add_column(LANG_NAMES[lang], justify="right")
    for model in MODELS:
        cells = []
        for lang in LANGS:
            check = report["targets"][f"{model}_{lang}"]
            style = "green" if check["met"] else "red"
            cells.append(f"[{style}]{_pct(check['value'])}[/] (target {check['target']})")
        table.add_row("base" if model == "base" else "base + LoRA", *cells)
    stages = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in report["stages_s"].items())
    table.caption = f"wall {report['wall_s']:.0f} s ({stages}); peak memory {report['peak_rss_mb']:.0f} MB"
    return table
