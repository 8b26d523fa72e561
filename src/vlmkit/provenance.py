"""Facts that say what produced an artefact: installed package versions and file content hashes."""

from __future__ import annotations

import hashlib
import os
import platform
from importlib import metadata
from typing import Iterable


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Python's version plus each package's installed version, read from metadata (nothing is imported)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
