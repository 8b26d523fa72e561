"""Readers for arrow-backed sources: parquet shards, `save_to_disk` folders and hub datasets.

Images are never decoded here: `datasets` Image columns arrive as their `{bytes, path}` struct.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import DataError
from .base import Item, Located, RawRecord, Source, shard_split

BATCH_ROWS = 32  # rows per arrow batch: a batch of document images stays in the tens of MB


@dataclass
class ParquetSource(Source):
    files: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        import pyarrow.parquet as pq

        total = 0
        for path in self.files:
            try:
                total += pq.ParquetFile(path).metadata.num_rows
            except Exception:  # an unreadable shard is reported when it is read
                pass
        self.total = total

    def records(self) -> Iterator[Item]:
        import pyarrow.parquet as pq

        for path in self.files:
            split = shard_split(path)
            try:
                batches = pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)
                row = 0
                for batch in batches:
                    for data in batch.to_pylist():
                        yield RawRecord(data, str(path), f"row {row}", split, path.parent)
                        row += 1
            except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for damaged files
                yield Located(str(path), "file", f"can't read parquet: {exc}")

    def first_record(self) -> dict[str, Any] | None:
        import pyarrow.parquet as pq

        for path in self.files:
            try:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=1):
                    rows = batch.to_pylist()
                    if rows:
                        return rows[0]
            except Exception:
                continue
        return None


@dataclass
class DiskSource(Source):
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""

    folder: Path = Path(".")
    split: str | None = None

    def _datasets(self) -> list[tuple[str | None, Any]]:
        import datasets

        try:
            loaded = datasets.load_from_disk(str(self.folder))
        except Exception as exc:
            raise DataError(f"can't load this save_to_disk folder: {exc}", path=self.folder) from None
        if isinstance(loaded, datasets.DatasetDict):
            names = list(loaded)
            if self.split:
                if self.split not in loaded:
                    raise DataError(f"no split '{self.split}' (splits: {', '.join(names)})", path=self.folder)
                names = [self.split]
            return [(name, loaded[name]) for name in names]
        return [(self.split, loaded)]

    def __post_init__(self) -> None:
        self.total = sum(len(ds) for _, ds in self._datasets())

    def records(self) -> Iterator[Item]:
        for name, ds in self._datasets():
            row = 0
            # Arrow format: no decoding, images stay {bytes, path}; the table is memory-mapped from disk.
            for table in ds.with_format("arrow").iter(batch_size=BATCH_ROWS):
                for data in table.to_pylist():
                    where = f"{name} row {row}" if name else f"row {row}"
                    yield RawRecord(data, str(self.folder), where, name, self.folder)
                    row += 1


class HubSource(Source):
    """A dataset on the Hugging Face hub (or any path `datasets.load_dataset` understands), streamed."""

    def __init__(self, dataset_id: str, *, split: str | None = None, config: str | None = None):
        super().__init__(label=dataset_id)
        self.dataset_id, self.split, self.config = dataset_id, split, config

    def _streams(self) -> list[tuple[str | None, Any]]:
        import datasets

        try:
            loaded = datasets.load_dataset(self.dataset_id, name=self.config, split=self.split, streaming=True)
        except Exception as exc:
            raise DataError(
                f"not a local file or folder, and loading it as a hub dataset failed: {exc}", path=self.dataset_id
            ) from None
        if isinstance(loaded, datasets.IterableDatasetDict):
            return [(name, _undecoded(stream)) for name, stream in loaded.items()]
        return [(self.split, _undecoded(loaded))]

    def records(self) -> Iterator[Item]:
        for name, stream in self._streams():
            for row, data in enumerate(stream):
                where = f"{name} row {row}" if name else f"row {row}"
                yield RawRecord(dict(data), self.dataset_id, where, name, None)


def _undecoded(stream: Any) -> Any:
    """Keep image/video columns as {bytes, path} so we decode each image once, ourselves."""
    import datasets

    features = getattr(stream, "features", None) or {}
    for name, feature in features.items():
        if isinstance(feature, datasets.Image):
            stream = stream.cast_column(name, datasets.Image(decode=False))
        elif hasattr(datasets, "Video") and isinstance(feature, datasets.Video):
            stream = stream.cast_column(name, datasets.Video(decode=False))
    return stream
