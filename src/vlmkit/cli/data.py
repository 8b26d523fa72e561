"""CLI: `vlmkit data import|export|stats|split|merge|check-leakage|augment`, thin layers over vlmkit.data.

Only typer is imported at module level; pyarrow, datasets, PIL and matplotlib load inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .engine_options import with_endpoint_options

data_app = typer.Typer(
    help="Import, inspect, split, merge, augment, leak-check and export datasets (samples.jsonl + media/).",
    no_args_is_help=True,
)

FORMAT_HELP = (
    "auto, vitextvqa, docvqa, infovqa, chartqa, vizwiz, textvqa, llava, sharegpt, video-captions, "
    "vlmevalkit (benchmark TSV: MMBench, AI2D, MMMU, POPE, MME...), lmms-choice (lmms-eval parquet of those) "
    "(auto detects from the columns/keys)"
)


@data_app.command("import")
def import_cmd(
    source: str = typer.Argument(
        ..., help="A file, a folder (parquet shards, save_to_disk, JSON + images) or a hub id."
    ),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Dataset folder to write (samples.jsonl, media/, import_report.json)."
    ),
    turns: str | None = typer.Option(
        None,
        "--turns",
        help="split: one sample per QA pair; keep: whole conversations. "
        "Default: split for vitextvqa, keep for llava/sharegpt.",
    ),
    on_error: str = typer.Option(
        "fail",
        "--on-error",
        help="fail: stop at the first bad record (exit 2); "
        "skip: import every valid record and list the bad ones in the report.",
    ),
    split: str | None = typer.Option(
        None, "--split", help="Only this split (shard prefix, DatasetDict key, hub split)."
    ),
    config: str | None = typer.Option(None, "--config", help="Hub config / subfolder, e.g. DocVQA or InfographicVQA."),
    media_root: Path | None = typer.Option(
        None,
        "--media-root",
        help="Folder that relative image/video paths point into; media must lie under it or the source folder.",
    ),
    prompt: str | None = typer.Option(None, "--prompt", help="video-captions: the question the caption answers."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing samples.jsonl in OUT."),
    allow_outside_paths: bool = typer.Option(
        False,
        "--allow-outside-paths",
        help="Accept absolute or ../ media paths outside the source folder and --media-root (refused by default).",
    ),
    max_text_chars: int = typer.Option(
        100_000, "--max-text-chars", min=1, help="Skip a record whose question or answer text is longer than this."
    ),
) -> None:
    """Turn a distributed dataset into samples.jsonl + content-addressed media/."""
    from ..data.importers import import_dataset

    report = import_dataset(
        source,
        out,
        format=format,
        turns=turns,
        on_error=on_error,
        split=split,
        config=config,
        media_root=media_root,
        prompt=prompt,
        overwrite=overwrite,
        allow_outside_paths=allow_outside_paths,
        max_text_chars=max_text_chars,
    )
    typer.echo(
        f"{report['format']}: {report['records_read']:,} records -> {report['samples_written']:,} samples, "
        f"{report['samples_skipped']:,} skipped; {report['images_stored']:,} image(s) stored "
        f"({report['duplicates']['images']:,} repeated reference(s))"
        + (f", {report['videos_stored']:,} video(s)" if report["video_references"] else "")
    )
    for entry in report["skipped"][:5]:
        typer.echo(f"  skipped {entry['source']} {entry['location']}: {entry['reason']}")
    if len(report["skipped"]) > 5:
        typer.echo(f"  ... and {len(report['skipped']) - 5} more")
    if report.get("warning"):
        typer.secho(f"warning: {report['warning']}", fg="yellow")
    refused = report.get("outside_paths_refused") or {}
    if refused.get("count"):
        typer.secho(
            f"warning: {refused['count']:,} media path(s) outside the source folder refused "
            f"(e.g. {', '.join(refused['examples'][:3])}); see --media-root / --allow-outside-paths",
            fg="yellow",
        )
    if report.get("samples_unsupported"):
        count = report["samples_unsupported"]
        typer.secho(f"warning: {count:,} sample(s) with audio skipped (unsupported)", fg="yellow")
    typer.echo(f"report: {out / 'import_report.json'}")


@data_app.command("export")
def export_cmd(
    dataset: Path = typer.Argument(..., help="A vlmkit dataset folder."),
    format: str = typer.Option(..., "--format", "-f", help="llava or sharegpt (LLaMA-Factory)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (.json, or .jsonl for one record per line)."),
    absolute_paths: bool = typer.Option(
        False,
        "--absolute-paths",
        help="Write absolute media paths instead of paths relative to the output file's folder.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """Write the dataset as LLaVA or LLaMA-Factory ShareGPT JSON for other trainers."""
    import json

    from ..data.export import export_dataset

    result = export_dataset(dataset, out, format=format, absolute_paths=absolute_paths, overwrite=overwrite)
    typer.echo(f"wrote {result['samples']:,} samples to {out} ({format})")
    typer.echo("LLaMA-Factory dataset_info.json entry:\n" + json.dumps(result["dataset_info"], indent=2))


@data_app.command("stats")
def stats_cmd(
    dataset: Path = typer.Argument(..., help="A vlmkit dataset folder."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Report folder (default: DATASET/stats)."),
    tokenizer: str = typer.Option(
        "qwen", "--tokenizer", help="'qwen' (offline Qwen vocabulary), a transformers tokenizer name/folder, or 'none'."
    ),
    top: int = typer.Option(20, "--top", help="How many top answers / leading words to list."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a report already in --out (DATASET/stats is always refreshed)."
    ),
) -> None:
    """EDA: counts, lengths, answer coverage at top-K with a verdict, question types, image sizes."""
    from rich.console import Console

    from ..data.stats import dataset_stats, summary_table, write_stats
    from ..errors import DataError

    if out is not None and (out / "stats.json").exists() and not overwrite:
        raise DataError("already holds a stats report (pass --overwrite to replace it)", path=out)
    stats = dataset_stats(dataset, tokenizer=tokenizer, top=top)
    report_dir = out or dataset / "stats"
    write_stats(stats, report_dir)
    Console().print(summary_table(stats))
    _warn_missing_media(dataset)
    typer.echo(f"report: {report_dir / 'stats.md'} (+ stats.json, plots)")


def _warn_missing_media(dataset: Path) -> None:
    from ..data.missing_media import find_missing
    from ..data.schema import iter_samples

    missing = find_missing(iter_samples(dataset))
    if missing.files:
        typer.secho(f"warning: {dataset}: {missing.sentence()}", fg="yellow", err=True)


@data_app.command("split")
def split_cmd(
    dataset: Path = typer.Argument(..., help="A vlmkit dataset folder."),
    val: float = typer.Option(0.1, "--val", help="Share of samples for validation."),
    test: float = typer.Option(0.1, "--test", help="Share of samples for test."),
    group_by: str = typer.Option(
        "image",
        "--group-by",
        help="image: no image in two splits; doc: no document (meta.doc_id) and no image in two splits.",
    ),
    seed: int = typer.Option(0, "--seed", help="Same data + same seed = same split."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Where train/ val/ test/ go (default: DATASET/splits)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing split folders."),
) -> None:
    """Group-aware, deterministic train/val/test split."""
    from ..data.split import split_dataset

    report = split_dataset(dataset, val=val, test=test, group_by=group_by, seed=seed, out=out, overwrite=overwrite)
    parts = ", ".join(f"{name} {n:,} ({report['fractions'][name]:.1%})" for name, n in report["samples"].items())
    typer.echo(f"{parts}; grouped by {group_by}, seed {seed}")
    if report["missing_media_files"]:
        typer.secho(
            f"warning: {dataset}: {report['missing_media_files']:,} media file(s) missing "
            f"(first samples: {', '.join(report['missing_media_examples'])})",
            fg="yellow",
            err=True,
        )
    typer.echo(f"report: {Path(report['out']) / 'split_report.json'}")


@data_app.command("merge")
def merge_cmd(
    sources: list[str] = typer.Argument(
        ...,
        help="Dataset folders to merge; DIR:N takes a seeded random N of "
        "DIR's samples (e.g. data/en-train:5000 as replay), DIR alone takes all.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="The merged dataset folder."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling and the shuffle."),
    shuffle: bool = typer.Option(
        True,
        "--shuffle/--no-shuffle",
        help="Shuffle the merged samples, or keep the sources' order one after the other.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset in --out."),
) -> None:
    """One dataset from several (e.g. DocVQA + ChartQA + InfoVQA for one fine-tune); media stored once."""
    from ..data.merge import REPORT_FILE, merge_datasets, parse_source

    report = merge_datasets([parse_source(s) for s in sources], out, seed=seed, shuffle=shuffle, overwrite=overwrite)
    parts = ", ".join(f"{Path(s['path']).name} {s['taken']:,}" for s in report["sources"])
    typer.echo(
        f"{report['samples']:,} samples ({parts}) -> {out}; {report['media_stored']:,} media files, "
        f"{report['media_shared']:,} shared"
    )
    typer.echo(f"report: {out / REPORT_FILE}")


@data_app.command("check-leakage")
def check_leakage_cmd(
    train: Path = typer.Argument(..., help="Training dataset folder."),
    eval: Path = typer.Argument(..., help="Evaluation dataset folder."),
    threshold: int = typer.Option(
        5, "--threshold", help="Near duplicate: perceptual hashes differ in at most this many of 64 bits."
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 1 when anything leaks."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Report file (default: EVAL/leakage_report.json)."),
    hash_cache: bool = typer.Option(
        True,
        "--hash-cache/--no-hash-cache",
        help="Reuse the hashes of files unchanged since the last run (path + size + mtime; "
        "$VLMKIT_CACHE_DIR, default ~/.cache/vlmkit/media_hashes.sqlite).",
    ),
) -> None:
    """Exact and near-duplicate images, identical (image, question) pairs, and augmented variants of eval samples
    (data augment's meta.source_id), between train and eval."""
    from ..data.leakage import check_leakage, summary_lines
    from ..io import write_json

    report = check_leakage(train, eval, threshold=threshold, hash_cache=hash_cache)
    path = out or eval / "leakage_report.json"
    write_json(path, report)
    for line in summary_lines(report):
        typer.echo(line)
    typer.echo(f"report: {path}")
    if report["leaks"]:
        typer.secho("leakage found", fg="red", err=True)
        if strict:
            # SystemExit, not typer.Exit: main() runs click with standalone_mode=False, which turns
            # typer.Exit into a return value that is then dropped.
            raise SystemExit(1)
    else:
        typer.echo("no leakage found")


@data_app.command("augment")
@with_endpoint_options()
def augment_cmd(
    dataset: Path = typer.Argument(..., help="A vlmkit dataset folder whose questions get new wordings."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Dataset folder to write (samples.jsonl, media/, augment_report.json)."
    ),
    model: str = typer.Option(..., "--model", "-m", help="The endpoint's model id (e.g. gpt-4o-mini, a vLLM model)."),
    method: list[str] = typer.Option(
        ["paraphrase"],
        "--method",
        help="paraphrase: reworded in the same language; backtranslate: into --via and back. Repeat for both.",
    ),
    n: int = typer.Option(1, "--n", help="Variants asked per question and method."),
    lang: str = typer.Option(
        "auto",
        "--lang",
        help="The questions' language code (vi, en, zh, ...); auto: detected from each question's script.",
    ),
    via: str = typer.Option("en", "--via", help="backtranslate: the pivot language code (vi -> en -> vi)."),
    prompt_file: Path | None = typer.Option(
        None,
        "--prompt-file",
        help="YAML with paraphrase / translate / check prompts replacing the defaults; placeholders {question}, "
        "{language}, {lang}, {source_language}, {source_lang}, {variant}, {n} (docs/data.md).",
    ),
    variants_only: bool = typer.Option(
        False, "--variants-only", help="Write only the kept variants (default: each source followed by its variants)."
    ),
    check_answer: bool = typer.Option(
        False,
        "--check-answer",
        help="Ask the endpoint each kept variant with the sample's images; keep it only if the answer matches "
        "the source answers (exact match after normalisation, or ANLS >= --answer-threshold).",
    ),
    answer_threshold: float = typer.Option(
        1.0,
        "--answer-threshold",
        help="--check-answer: ANLS at which an answer agrees; 1.0 = exact match only, 0.8 forgives one character in 5.",
    ),
    max_ratio: float = typer.Option(
        3.0, "--max-ratio", help="Drop a variant longer than this many times its source question (characters)."
    ),
    max_chars: int | None = typer.Option(None, "--max-chars", help="Drop a variant longer than this many characters."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Longest answer of one request, in tokens."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature of the rewriting requests."),
    seed: int = typer.Option(0, "--seed", help="Request seed of variant k is seed + k (endpoints that take one)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start over: drop OUT's request log and dataset (a rerun without it resumes)."
    ),
    endpoint=None,
) -> None:
    """New wordings of each question (paraphrase, back-translation) from an OpenAI-compatible endpoint, filtered.

    Rerunning the same command resumes: answered requests (OUT/augment_requests.jsonl) are not sent again. Each variant keeps the source's images and answers and records meta.source_id, so `data split` keeps it with its source and `data check-leakage` flags it when its source is in the evaluation set. See docs/data.md.
    """  # noqa: E501 (one line per paragraph: the help wraps it to the terminal)
    from ..data.augment import AugmentSettings, augment_dataset
    from ..data.augment.filters import Limits
    from ..data.augment.report import REPORT_FILE, summary_lines

    settings = AugmentSettings(
        methods=tuple(dict.fromkeys(method)),
        n=n,
        lang=lang,
        via=via,
        include_sources=not variants_only,
        check_answer=check_answer,
        answer_threshold=answer_threshold,
        limits=Limits(max_ratio=max_ratio, max_chars=max_chars),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        prompt_file=prompt_file,
    )
    report = augment_dataset(dataset, out, endpoint=endpoint, model=model, settings=settings, overwrite=overwrite)
    for line in summary_lines(report):
        typer.echo(line)
    failed = report["tokens"]["requests_failed_this_run"]
    if failed:
        typer.secho(f"warning: {failed:,} request(s) failed; rerun the command to retry them", fg="yellow", err=True)
    typer.echo(f"report: {out / REPORT_FILE}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
