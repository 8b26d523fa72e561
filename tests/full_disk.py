"""Run a command with its output folder on a disk that fills up: a real tmpfs of a given size mounted in a private
user + mount namespace (`unshare -rm`), or, where namespaces are not allowed, a real RLIMIT_FSIZE on the process
(writes past the limit fail with EFBIG at the write call, like ENOSPC)."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def tmpfs_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || exit 1"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def run_on_small_disk(
    argv: list[str], disk: Path, size: str, keep: Path, timeout: int = 300
) -> subprocess.CompletedProcess:
    """argv with a fresh tmpfs of `size` (e.g. "96k", "40m") mounted on `disk` for its whole life; what it left on
    the disk is copied to `keep` afterwards (the tmpfs vanishes with the namespace)."""
    disk.mkdir(parents=True, exist_ok=True)
    keep.mkdir(parents=True, exist_ok=True)
    script = 'mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99; d="$2"; k="$3"; shift 3; "$@"; rc=$?; '
    script += 'cp -a "$d"/. "$k"/; exit $rc'
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", size, str(disk), str(keep), *argv],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        check=False,
    )


def run_with_file_size_limit(argv: list[str], limit: int, timeout: int = 300) -> subprocess.CompletedProcess:
    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        argv, capture_output=True, text=True, env=ENV, timeout=timeout, preexec_fn=limit_files, check=False
    )
