"""Which samples point at media files that are not on disk, said up front (stats, split, train --check) instead of
as a counter inside a JSON file or a crash halfway through training."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .schema import Sample

EXAMPLES = 5


@dataclass
class MissingMedia:
    files: int = 0  # missing local media references
    sample_ids: list[str] = field(default_factory=list)  # the first samples that miss one
    samples: int = 0

    def sentence(self) -> str:
        more = ", …" if self.samples > len(self.sample_ids) else ""
        return (
            f"{self.files:,} media file(s) missing, in {self.samples:,} sample(s) "
            f"(first: {', '.join(self.sample_ids)}{more})"
        )


def find_missing(samples: Iterable[Sample], root: str | os.PathLike | None = None) -> MissingMedia:
    """Local media of `samples` that do not exist; relative paths are taken under `root` (URLs are not checked)."""
    found = MissingMedia()
    for sample in samples:
        absent = [
            ref
            for ref in sample.media()
            if "://" not in ref and not ref.startswith("data:") and not (Path(root or "") / ref).is_file()
        ]
        if absent:
            found.files += len(absent)
            found.samples += 1
            if len(found.sample_ids) < EXAMPLES:
                found.sample_ids.append(sample.id)
    return found
