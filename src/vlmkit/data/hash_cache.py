"""A cache of media hashes (sha256 and perceptual hash) keyed by file path, size and modification time, so that
`vlmkit data check-leakage` reads and decodes only the files that are new or changed since its last run.

Where: one SQLite file, `$VLMKIT_CACHE_DIR/media_hashes.sqlite` (default `$XDG_CACHE_HOME/vlmkit`, else
`~/.cache/vlmkit`), shared by every dataset on the machine: a dataset folder may be read-only or shared, and a
cache beside it would travel with copies whose mtimes no longer mean anything. A file is looked up by its
resolved absolute path; a different size or mtime (nanoseconds) makes the entry stale and the file is hashed
again. SQLite serialises concurrent runs. When the cache cannot be opened (read-only home, full disk) hashing
goes on without it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

CACHE_FILE = "media_hashes.sqlite"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, "
    "sha256 TEXT NOT NULL, phash TEXT)"
)


def cache_dir() -> Path:
    if os.environ.get("VLMKIT_CACHE_DIR"):
        return Path(os.environ["VLMKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vlmkit"


Entry = tuple[str, int | None]  # (sha256 hex, 64-bit perceptual hash or None for videos)


class HashCache:
    """`get(path)` -> Entry while the file is unchanged, else None; `put(path, entry)`; `close()` commits."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else cache_dir() / CACHE_FILE
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[str, int, int, str, str | None]] = []
        self._stats: dict[Path, tuple[str, int, int]] = {}  # taken before the file is read, stored with its hash
        self.hits = self.misses = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            log.warning("media hash cache %s unavailable (%s); hashing every file", self.path, exc)
            self._db = None

    @staticmethod
    def _stat(path: Path) -> tuple[str, int, int] | None:
        try:
            resolved = path.resolve()
            info = resolved.stat()
        except OSError:
            return None
        return str(resolved), info.st_size, info.st_mtime_ns

    def get(self, path: Path) -> Entry | None:
        stat = self._stat(path)
        if self._db is None or stat is None:
            return None
        self._stats[path] = stat
        row = self._db.execute("SELECT size, mtime_ns, sha256, phash FROM hashes WHERE path = ?", (stat[0],)).fetchone()
        if row is None or (row[0], row[1]) != stat[1:]:
            self.misses += 1
            return None
        self.hits += 1
        return row[2], (int(row[3], 16) if row[3] else None)

    def put(self, path: Path, entry: Entry) -> None:
        """Remember `entry` for the file as `get` saw it (a file changed while it was read is hashed again)."""
        stat = self._stats.pop(path, None)
        if self._db is not None and stat is not None:
            sha, phash = entry
            self._pending.append((*stat, sha, f"{phash:016x}" if phash is not None else None))

    def close(self) -> None:
        if self._db is None:
            return
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?)", self._pending)
        except sqlite3.Error as exc:  # a cache that cannot be written costs time on the next run, nothing else
            log.warning("media hash cache %s not updated (%s)", self.path, exc)
        self._db.close()
        self._db = None
        self._pending = []
