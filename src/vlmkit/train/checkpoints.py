"""Checkpoints that are either complete or absent.

The Trainer writes `checkpoint-<step>/` file by file; a full disk or a kill mid-save used to leave a folder without
`trainer_state.json` (or with a truncated `rng_state.pth`) that `--resume` then picked and crashed on. Here a
checkpoint is written under `checkpoints/.incomplete/` and renamed into place only when every file is written; on
resume, folders without a readable `trainer_state.json` (left by older versions) are skipped and reported.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

log = logging.getLogger("vlmkit.train")

STAGING_DIR = ".incomplete"  # inside checkpoints/; the Trainer's own scan ignores names not "checkpoint-<n>"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def is_complete(folder: Path) -> bool:
    """A checkpoint is complete when its trainer_state.json (written last) parses."""
    try:
        json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def checkpoints_by_step(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found)


def last_complete(root: Path) -> tuple[Path | None, list[Path]]:
    """The newest complete checkpoint under `root`, and the incomplete ones newer than it (to report)."""
    skipped: list[Path] = []
    for _, path in reversed(checkpoints_by_step(root)):
        if is_complete(path):
            return path, skipped
        skipped.append(path)
    return None, skipped


def remove_after(root: Path, step: int) -> list[Path]:
    """Delete checkpoints saved after `step` (weights that may already hold NaN); returns what was removed."""
    removed = [path for s, path in checkpoints_by_step(root) if s > step]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def discard_staging(root: Path) -> None:
    """Remove a half-written checkpoint left in the staging folder (frees the space a failed save took)."""
    staging = root / STAGING_DIR
    if staging.exists():
        shutil.rmtree(staging, ignore_errors=True)


def publish(root: Path, name: str) -> Path:
    """Move a finished checkpoint from the staging folder to `root/name` (a rename: all or nothing)."""
    source, target = root / STAGING_DIR / name, root / name
    if target.exists():  # the same step saved again (e.g. the final step after a resume)
        shutil.rmtree(target)
    source.rename(target)
    discard_staging(root)
    return target
