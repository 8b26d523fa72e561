"""manifest.json: what a run was made from (versions, data hashes, git commit, parameter counts) and how it ended."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..data.schema import samples_path
from ..provenance import file_sha256, package_versions

PACKAGES = ("vlmkit", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "trl", "datasets", "tokenizers")


def data_fingerprint(folder: str | None, n_samples: int) -> dict[str, Any] | None:
    """Hash of samples.jsonl (media are content-addressed, so their names are part of it)."""
    if not folder:
        return None
    path = samples_path(folder)
    return {"path": str(path), "sha256": file_sha256(path), "samples": n_samples}


def git_state(where: Path) -> dict[str, Any] | None:
    """Commit and dirty flag of the git checkout holding `where`, if any."""

    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if commit is None:
        return None
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status), "root": run("rev-parse", "--show-toplevel")}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def base_manifest(
    *,
    config: Any,
    family: str,
    model_source: str,
    train_samples: int,
    eval_samples: int,
    world_size: int,
    parameters: dict[str, dict[str, int]],
    config_dir: Path | None,
) -> dict[str, Any]:
    return {
        "status": "running",
        "started": now(),
        "command": sys.argv,
        "method": config.method,
        "model": {"source": model_source, "family": family},
        "data": {
            "train": data_fingerprint(config.data.train, train_samples),
            "eval": data_fingerprint(config.data.eval, eval_samples),
        },
        "versions": package_versions(PACKAGES),
        "git": git_state(config_dir or Path.cwd()),
        "host": {"platform": platform.platform(), "machine": platform.machine()},
        "world_size": world_size,
        "parameters": parameters,
    }
