"""Waiting on a subprocess's progress through the files it writes."""

from __future__ import annotations

import time
from pathlib import Path


def wait_for_lines(path: Path, count: int, timeout: float = 120, poll: float = 0.02) -> int:
    """Wait until `path` exists and holds at least `count` lines (or `timeout` passes); return the count seen."""
    deadline = time.time() + timeout
    lines = 0
    while time.time() < deadline:
        lines = path.read_text().count("\n") if path.exists() else 0
        if lines >= count:
            break
        time.sleep(poll)
    return lines
