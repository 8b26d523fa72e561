"""Pick the reader for a SOURCE argument; the readers stream one record at a time, so memory stays flat.

- parquet file or folder of shards (`data/test-00000-of-00002.parquet`): pyarrow record batches
- a folder written by `datasets.save_to_disk`: `load_from_disk`, read as arrow batches (memory-mapped)
- a hub id: `datasets.load_dataset(id, streaming=True)`
- JSON (an array, `{"data": [...]}`, or pandas' column orientation), JSON Lines, CSV/TSV

The first three are in readers_arrow.py, the text formats in readers_text.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import DataError
from .base import Source, shard_split
from .readers_arrow import DiskSource, HubSource, ParquetSource
from .readers_text import CsvSource, JsonLinesSource, JsonSource

ANNOTATION_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".tsv")
NOT_ANNOTATIONS = {"dataset_info.json", "state.json", "dataset_dict.json", "import_report.json", "stats.json"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

__all__ = [
    "CsvSource",
    "DiskSource",
    "HubSource",
    "JsonLinesSource",
    "JsonSource",
    "ParquetSource",
    "Source",
    "open_source",
]


def open_source(source: str | Path, *, split: str | None = None, config: str | None = None) -> Source:
    """Pick the reader for SOURCE: a file, a folder (parquet shards, save_to_disk, JSON + images) or a hub id."""
    path = Path(source).expanduser()
    if path.is_file():
        return _file_source(path)
    if path.is_dir():
        return _folder_source(path, split=split, config=config)
    text = str(source)
    if HUB_ID.match(text) and not text.startswith((".", "/")) and Path(text).suffix not in ANNOTATION_SUFFIXES:
        return HubSource(text, split=split, config=config)
    raise DataError("no such file or folder (and not a hub dataset id)", path=source)


def _file_source(path: Path) -> Source:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return ParquetSource(str(path), files=[path])
    if suffix in (".json",):
        return JsonSource(str(path), path=path)
    if suffix in (".jsonl", ".ndjson"):
        return JsonLinesSource(str(path), path=path)
    if suffix in (".csv", ".tsv"):
        return CsvSource(str(path), path=path)
    raise DataError(
        f"can't import a '{suffix or 'suffixless'}' file; expected parquet, JSON, JSON Lines or CSV", path=path
    )


def _folder_source(folder: Path, *, split: str | None, config: str | None) -> Source:
    if (folder / "dataset_dict.json").exists() or (folder / "state.json").exists():
        return DiskSource(str(folder), folder=folder, split=split)
    root = folder / config if config and (folder / config).is_dir() else folder
    shards = sorted(
        p for p in root.rglob("*.parquet") if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    folders = sorted({str(p.parent.relative_to(root)) for p in shards})
    if len(folders) > 1 and not config and split in folders:  # one folder per split: root/train, root/test
        root, split = root / split, None
        shards = [p for p in shards if p.parent == root]
        folders = ["."]
    if len(folders) > 1 and not config:  # e.g. a clone of lmms-lab/DocVQA: DocVQA/ and InfographicVQA/
        raise DataError(
            f"parquet shards in several subfolders ({', '.join(folders)}); pass --config NAME to pick one", path=root
        )
    if shards:
        if split:
            chosen = [p for p in shards if shard_split(p) == split]
            if not chosen:
                found = sorted({shard_split(p) or "?" for p in shards})
                raise DataError(f"no parquet shards for split '{split}' (splits here: {', '.join(found)})", path=root)
            shards = chosen
        return ParquetSource(str(root), files=shards)
    candidates = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in ANNOTATION_SUFFIXES and p.name not in NOT_ANNOTATIONS
    )
    if split:
        candidates = [p for p in candidates if p.stem == split] or candidates
    if len(candidates) == 1:
        return _file_source(candidates[0])
    if not candidates:
        raise DataError("folder has no parquet shards, save_to_disk files or JSON/CSV annotation file", path=folder)
    names = ", ".join(p.name for p in candidates)
    raise DataError(f"folder has several annotation files ({names}); pass one of them, or --split NAME", path=folder)
