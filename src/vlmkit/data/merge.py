"""`vlmkit data merge`: one dataset made of several (DocVQA + ChartQA + InfoVQA for one fine-tune, a new
language plus replay of the old one), so training and evaluation keep taking one folder.

Each source contributes all its samples or a seeded random sample of N; the result is shuffled (or kept in
source order). Media are re-stored content-addressed, so a file that two sources share is kept once and
sources with colliding file names cannot overwrite each other. Ids must be unique across the sources: a
clash is an error naming both, never a silent drop.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import check_output_dir, write_json
from .schema import DatasetWriter, Sample, read_samples, samples_path

REPORT_FILE = "merge_report.json"
Source = str | os.PathLike | tuple[str | os.PathLike, int | None]


def parse_source(text: str) -> tuple[Path, int | None]:
    """'data/en' -> all of it; 'data/en:5000' -> 5,000 of its samples (a path that exists as written wins)."""
    head, sep, tail = text.rpartition(":")
    if sep and tail.isdigit() and head and not Path(text).exists():
        return Path(head), int(tail)
    return Path(text), None


def merge_datasets(
    sources: Sequence[Source],
    out_dir: str | os.PathLike,
    *,
    seed: int | str = 0,
    shuffle: bool = True,
    overwrite: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Write the merged dataset to out_dir (samples.jsonl, media/, merge_report.json); returns the report."""
    from tqdm.auto import tqdm

    check_output_dir(out_dir, [entry[0] if isinstance(entry, tuple) else entry for entry in sources])
    rng = random.Random(seed)
    picked: list[tuple[Path, Sample]] = []
    owners: dict[str, Path] = {}
    report_sources = []
    for entry in sources:
        source, count = entry if isinstance(entry, tuple) else (entry, None)
        source = Path(source)
        if count is not None and count < 1:
            raise DataError(f"asked for {count} samples; give a positive count or none for all", path=source)
        samples = read_samples(source, resolve_media=False)
        chosen = samples if count is None else rng.sample(samples, min(count, len(samples)))
        for sample in chosen:
            if sample.id in owners:
                raise DataError(
                    f"sample id '{sample.id}' is in {owners[sample.id]} too; ids must be unique across merged datasets",
                    path=source,
                )
            owners[sample.id] = source
        picked += [(source, sample) for sample in chosen]
        report_sources.append({"path": str(source), "samples": len(samples), "requested": count, "taken": len(chosen)})
    if shuffle:
        rng.shuffle(picked)
    out = Path(out_dir)
    used_by: dict[str, set[Path]] = {}  # stored media file -> the sources that use it
    with DatasetWriter(out, overwrite=overwrite) as writer:
        for source, sample in tqdm(picked, desc="merge", unit="sample", disable=progress is False):
            data = _restore_media(sample.to_json(), samples_path(source).parent, writer, used_by, source)
            writer.write(data)
    report = {
        "out": str(out),
        "samples": writer.samples_written,
        "sources": report_sources,
        "seed": seed,
        "shuffled": shuffle,
        "media_stored": writer.media_stored,
        "media_shared": sum(len(users) > 1 for users in used_by.values()),  # files used by two sources or more
    }
    write_json(out / REPORT_FILE, report)
    return report


def _restore_media(
    data: dict[str, Any], root: Path, writer: DatasetWriter, used_by: dict[str, set[Path]], source: Path
) -> dict[str, Any]:
    """Store the sample's dataset-relative media (under `root`) in the merged dataset, hard-linked where the
    filesystem allows; absolute paths and URLs stay as they are."""
    for message in data["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else ():
            kind = part.get("type")
            if kind not in ("image", "video"):
                continue
            ref = part[kind]
            if os.path.isabs(ref) or "://" in ref or ref.startswith("data:"):
                continue
            if not (root / ref).is_file():
                raise DataError(f"media file {ref} is missing", path=root, record=data["id"])
            part[kind] = writer.add_media_file(root / ref, link=True)
            used_by.setdefault(part[kind], set()).add(source)
    return data
