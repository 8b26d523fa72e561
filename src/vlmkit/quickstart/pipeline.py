"""`vlmkit quickstart`: the whole story on a laptop CPU, through the same functions a real project calls.

    data      ShapesVQA in English and Vietnamese (DatasetWriter), train/test split by image, `data stats`
    base      the shipped English base checkpoint, or (--from-scratch / --train-base) `models.tiny` + `train`
    before    `eval` of the base on the English and Vietnamese test splits
    finetune  `train` with LoRA on Vietnamese (plus English replay)
    after     `eval` of base + adapter on both test splits, then `compare`
    report    OUT/report.md, report.json and PNGs

Every stage writes plain folders under OUT (see `Layout`); the configs it runs are copied to OUT/configs/ so
each stage can be re-run by hand with the ordinary CLI.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VlmkitError
from ..io import read_yaml_mapping, write_json
from .shapes import LANGS, ShapesConfig

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "quickstart"
SHIPPED_BASE = ASSETS / "base"
TRAINING_RECORD = "quickstart_training.json"  # written next to a base checkpoint trained by the quickstart
STAGES = ("data", "base", "before", "finetune", "after", "report")
# The tiny Qwen2-VL the base is trained from: LM hidden 128 / 2 layers, ViT width 128 / depth 2.
TINY_MODEL = dict(family="qwen2_vl", text_hidden=128, vision_width=128)
ENGLISH_REPLAY = 0.5  # English samples replayed in the fine-tune, per Vietnamese one
HARMLESS_WARNINGS = (
    r"`is_gradient_checkpointing` is deprecated",  # transformers 5.x, raised inside Trainer
    r"Setting `save_embedding_layers` to `True`",  # peft: expected, we adapt embed_tokens
)


@dataclass
class QuickstartOptions:
    out: Path
    seed: int = 0
    from_scratch: bool = False  # train the base here instead of starting from the shipped one
    train_base: bool = False  # from_scratch, then also replace the shipped base checkpoint
    shapes: ShapesConfig = field(default_factory=ShapesConfig)
    base_overrides: list[str] = field(default_factory=list)  # dotted config overrides, as `vlmkit train`
    finetune_overrides: list[str] = field(default_factory=list)
    eval_batch_size: int = 64
    threads: int | None = None
    shipped_base: Path = SHIPPED_BASE

    @property
    def trains_base(self) -> bool:
        return self.from_scratch or self.train_base


@dataclass(frozen=True)
class Layout:
    """Where each stage's artefacts live under OUT."""

    out: Path

    def data(self, name: str) -> Path:
        return self.out / "data" / name

    @property
    def configs(self) -> Path:
        return self.out / "configs"

    @property
    def base_init(self) -> Path:
        return self.out / "base-init"

    @property
    def base(self) -> Path:
        return self.out / "base"

    def run(self, name: str) -> Path:
        return self.out / "runs" / name

    @property
    def adapter(self) -> Path:
        return self.run("finetune") / "adapter"

    def eval(self, model: str, lang: str) -> Path:
        return self.out / "eval" / f"{model}-{lang}"

    def compare(self, lang: str) -> Path:
        return self.out / "compare" / lang

    @property
    def task(self) -> Path:
        return self.configs / "shapes_vqa.yaml"


class RunDisplay:
    """One progress display for the whole run: a stage bar on top; each stage's own bar (training steps,
    evaluated samples) stacks beneath it. Stage wall times are recorded for the report."""

    def __init__(self, enabled: bool = True):
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.enabled = enabled
        self.seconds: dict[str, float] = {}
        self.bar = tqdm(
            total=len(STAGES),
            desc="quickstart",
            unit="stage",
            position=0,
            disable=not enabled,
            bar_format="{desc}: {n_fmt}/{total_fmt} stages |{bar}| {elapsed}",
        )

    @contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        self.bar.set_description_str(f"quickstart [{name}] {what}")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 2)
        self.bar.update(1)

    def sub(self, total: int, desc: str) -> Any:
        return self._tqdm(total=total, desc=desc, leave=False, position=1, disable=not self.enabled)

    def close(self) -> None:
        self.bar.set_description_str("quickstart")
        self.bar.close()


# --- stages -----------------------------------------------------------------------------------------
def make_data(layout: Layout, options: QuickstartOptions, display: RunDisplay) -> dict[str, Any]:
    """ShapesVQA in both languages, a fine-tune mixture, and `data stats` of every folder."""
    from ..data.merge import merge_datasets
    from ..data.stats import dataset_stats, write_stats
    from .shapes import write_split

    config = dataclasses.replace(options.shapes, seed=options.seed)
    names = [f"{lang}-{split}" for split in ("train", "test") for lang in LANGS]
    bar = display.sub(len(names) + 3, "data")
    for name in names:
        lang, split = name.split("-")
        write_split(layout.data(name), split, lang, config)
        bar.update(1)
    if options.trains_base:
        # The base's English data: the same stream, longer (en-train is its prefix, parallel to vi-train).
        write_split(layout.data("base-train"), "train", "en", config, images=config.base_train_images)
        names.append("base-train")
    bar.update(1)
    merge_datasets(
        [(layout.data("vi-train"), None), (layout.data("en-train"), round(ENGLISH_REPLAY * config.train_images))],
        layout.data("finetune-train"),
        seed=f"shapes-mix-{options.seed}",
        overwrite=True,
        progress=False,
    )
    bar.update(1)
    stats = {}
    for name in [*names, "finetune-train"]:
        result = dataset_stats(layout.data(name), tokenizer="none", progress=False)
        write_stats(result, layout.data(name) / "stats")
        stats[name] = _count_summary(result)
    bar.update(1)
    bar.close()
    return {"config": dataclasses.asdict(config), "datasets": stats}


def _count_summary(stats: dict[str, Any]) -> dict[str, Any]:
    return {key: stats[key] for key in ("samples", "images", "qa_pairs", "unique_answers") if key in stats}


def copy_configs(layout: Layout) -> None:
    layout.configs.mkdir(parents=True, exist_ok=True)
    for name in ("base.yaml", "finetune.yaml", "shapes_vqa.yaml"):
        shutil.copyfile(ASSETS / name, layout.configs / name)


def train_stage(
    layout: Layout, config_name: str, run_name: str, overrides: list[str], seed: int, display: RunDisplay | None = None
) -> Any:
    """`vlmkit train OUT/configs/<config_name> --out OUT/runs/<run_name>` with the run's seed."""
    from ..train import train

    run_dir = layout.run(run_name)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a quickstart run starts clean; --out picks a new folder to keep old runs
    return train(
        layout.configs / config_name,
        [f"train.seed={seed}", *overrides],
        out=run_dir,
        progress=display is not None and display.enabled,
    )


def make_base(layout: Layout, options: QuickstartOptions, display: RunDisplay) -> dict[str, Any]:
    """The English base: trained here (tiny init + full training) or copied from the shipped checkpoint."""
    if layout.base.exists():
        shutil.rmtree(layout.base)
    if not options.trains_base:
        if not (options.shipped_base / "config.json").exists():
            raise VlmkitError(
                f"{options.shipped_base}: no shipped base checkpoint; rebuild it with "
                "`vlmkit quickstart --train-base` or run `vlmkit quickstart --from-scratch`"
            )
        shutil.copytree(options.shipped_base, layout.base)
        record = _read_record(layout.base)
        return {
            "source": "shipped",
            "path": str(layout.base),
            "shipped_from": str(options.shipped_base),
            "training": record,
        }

    from ..models.tiny import build_tiny
    from .shapes import corpus

    if layout.base_init.exists():
        shutil.rmtree(layout.base_init)
    build_tiny(
        TINY_MODEL["family"],
        layout.base_init,
        corpus=corpus(),
        seed=options.seed,
        text_hidden=TINY_MODEL["text_hidden"],
        vision_width=TINY_MODEL["vision_width"],
    )
    result = train_stage(layout, "base.yaml", "base", options.base_overrides, options.seed, display)
    shutil.copytree(result.final_dir, layout.base)
    record = training_record(result, command=_base_command(options), options=options)
    write_json(layout.base / TRAINING_RECORD, record)
    return {"source": "trained", "path": str(layout.base), "training": record}


def _base_command(options: QuickstartOptions) -> str:
    flags = ["--train-base" if options.train_base else "--from-scratch"]
    if options.seed:
        flags.append(f"--seed {options.seed}")
    flags += [f"--base-set {o}" for o in options.base_overrides]
    return "vlmkit quickstart " + " ".join(flags)


def training_record(result: Any, *, command: str, options: QuickstartOptions) -> dict[str, Any]:
    manifest_path = result.run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    return {
        "command": command,
        "seed": options.seed,
        "steps": result.global_step,
        "final_loss": result.final_loss,
        "samples_per_second": result.samples_per_second,
        "parameters": result.parameters,
        "train_samples": ((manifest.get("data") or {}).get("train") or {}).get("samples"),
        "config": _run_config(result.run_dir),
        "started": manifest.get("started"),
        "finished": manifest.get("finished"),
        "losses": [[row["step"], row["loss"]] for row in result.log_history if "loss" in row],
    }


def _run_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "config.yaml"
    return read_yaml_mapping(path, "run config") if path.exists() else None


def _read_record(checkpoint: Path) -> dict[str, Any] | None:
    path = checkpoint / TRAINING_RECORD
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def evaluate_model(
    layout: Layout, name: str, model: Path, adapter: Path | None, options: QuickstartOptions, display: RunDisplay
) -> dict[str, dict[str, Any]]:
    """`vlmkit eval` of one model on both test splits; returns the score summary per language."""
    from ..eval.suite import SuiteRun, evaluate_suite

    runs = [
        SuiteRun(layout.task, layout.data(f"{lang}-test"), layout.eval(name, lang), f"eval {name} ({lang})")
        for lang in LANGS
    ]
    result = evaluate_suite(
        str(model),
        runs,
        adapter=adapter,
        batch_size=options.eval_batch_size,
        overwrite=True,
        progress=lambda label: display.sub(0, label),
    )
    return {lang: evaluated.summary for lang, (_, evaluated) in zip(LANGS, result.runs)}


def compare_stage(layout: Layout) -> dict[str, Any]:
    """`vlmkit compare` base vs tuned, per language (the runs of one language share sample ids)."""
    from ..eval import compare

    out = {}
    for lang in LANGS:
        result = compare(
            [layout.eval("base", lang), layout.eval("tuned", lang)],
            out_dir=layout.compare(lang),
            names=[f"base ({lang})", f"tuned ({lang})"],
        )
        out[lang] = {
            "markdown": result["markdown"],
            "files": result.get("files", {}),
            "delta": result["runs"][1]["deltas"],
        }
    return out


def rebuild_shipped_base(layout: Layout, options: QuickstartOptions, before: dict[str, Any]) -> None:
    """--train-base: replace the packaged base checkpoint, with its training record and measured accuracy."""
    record = _read_record(layout.base) or {}
    record["accuracy"] = {lang: before[lang]["overall"]["exact_match"] for lang in LANGS}
    write_json(layout.base / TRAINING_RECORD, record)
    target = options.shipped_base
    staging = target.with_name(target.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(layout.base, staging, ignore=shutil.ignore_patterns("training_args.bin"))
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


# --- the run ----------------------------------------------------------------------------------------
def run_quickstart(options: QuickstartOptions, *, show_progress: bool = True) -> dict[str, Any]:
    """Run every stage into options.out and return the report (also written as OUT/report.json)."""
    import torch

    started = time.perf_counter()
    if options.threads:
        torch.set_num_threads(options.threads)
    layout = Layout(Path(options.out).resolve())
    layout.out.mkdir(parents=True, exist_ok=True)
    copy_configs(layout)
    display = RunDisplay(enabled=show_progress)
    try:
        with quiet_libraries():
            report, compared = run_stages(layout, options, display)
    finally:
        display.close()
    from .report import save_report

    report.update(
        stages_s=dict(display.seconds), wall_s=round(time.perf_counter() - started, 2), peak_rss_mb=peak_rss_mb()
    )
    save_report(report, compared, layout)
    return report


def run_stages(layout: Layout, options: QuickstartOptions, display: RunDisplay) -> tuple[dict[str, Any], dict]:
    from .report import build_report

    with display.stage("data", "generating ShapesVQA"):
        data = make_data(layout, options, display)
    with display.stage("base", "training the English base" if options.trains_base else "English base"):
        base = make_base(layout, options, display)
    with display.stage("before", "evaluating the base"):
        before = evaluate_model(layout, "base", layout.base, None, options, display)
    if options.train_base:
        rebuild_shipped_base(layout, options, before)
        base["training"] = _read_record(layout.base)
    with display.stage("finetune", "LoRA fine-tune on Vietnamese"):
        finetune = train_stage(layout, "finetune.yaml", "finetune", options.finetune_overrides, options.seed, display)
    with display.stage("after", "evaluating base + adapter"):
        after = evaluate_model(layout, "tuned", layout.base, layout.adapter, options, display)
        compared = compare_stage(layout)
    with display.stage("report", "writing the report"):
        report = build_report(
            layout,
            options=options,
            data=data,
            base=base,
            before=before,
            after=after,
            finetune=finetune,
            compared=compared,
        )
    return report, compared


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """No weight-loading bars or known-harmless library warnings in the middle of the one display."""
    import logging
    import warnings

    import transformers

    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    # bitsandbytes (imported by peft) logs that an optional CPU 4-bit kernel is missing; the quickstart never
    # quantises
    bnb_logger = logging.getLogger("bitsandbytes")
    bnb_level = bnb_logger.level
    bnb_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for message in HARMLESS_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        bnb_logger.setLevel(bnb_level)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB, macOS bytes)."""
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
