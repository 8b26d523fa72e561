"""What identifies the weights an eval run used, so a resume never mixes two models' answers in one run.

A model or adapter folder is fingerprinted by the size and modification time of every file in it (cheap, even
for many-GB weights) and a sha256 of the small files that define it (the model's config.json; the adapter's
config and weights). Paths are compared resolved, so `tiny` and `/abs/path/tiny` are the same model.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

HASHED = ("config.json", "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def local_path(name: str | os.PathLike | None) -> str | None:
    """The resolved path of a local model or adapter folder, or None for a hub id / endpoint model name."""
    if name is None or not Path(name).exists():
        return None
    return str(Path(name).resolve())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_fingerprint(folder: str | os.PathLike | None) -> dict[str, Any] | None:
    """{"files": {relative path: [size, mtime_ns]}, "<name>_sha256": ...} of a local folder; None otherwise."""
    if folder is None or not Path(folder).is_dir():
        return None
    root = Path(folder).resolve()
    files: dict[str, list[int]] = {}
    hashes: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        stat = path.stat()
        files[path.relative_to(root).as_posix()] = [stat.st_size, stat.st_mtime_ns]
        if path.parent == root and path.name in HASHED:
            hashes[path.name.split(".")[0].replace("adapter_model", "adapter") + "_sha256"] = _sha256(path)
    return {"files": files, **hashes}


def model_fingerprint(model: str | os.PathLike, adapter: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest's `fingerprint`: of the model folder and of the adapter folder (None for hub ids)."""
    return {"model": folder_fingerprint(model), "adapter": folder_fingerprint(adapter)}
