"""Small file helpers that every stage shares: atomic writes and crash-safe JSONL appends."""

from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import ConfigError, DataError


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """A handle to a temp file beside `path`, renamed onto it only if the block completes, so readers
    never see half a file and a crash leaves the old one in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    with atomic_open(path, "w", encoding) as handle:
        handle.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def check_output_dir(
    out: str | os.PathLike,
    sources: Mapping[str, str | os.PathLike | None] | Iterable[str | os.PathLike | None],
    *,
    option: str = "--out",
) -> Path:
    """Refuse an output folder that is, contains, or lies inside one of the command's inputs, so that writing
    there (or replacing it with --overwrite) can never destroy or mix into a source. `sources` maps a label
    (e.g. "data.train") to a path, or is a plain list of paths; None and paths that do not exist (hub ids) are
    skipped. Symlinks are resolved. Returns `out` resolved; raises ConfigError naming both folders."""
    target = Path(out).resolve()
    labelled = sources.items() if isinstance(sources, Mapping) else ((None, s) for s in sources)
    for label, source in labelled:
        if source is None or not str(source) or not Path(source).exists():
            continue
        resolved = Path(source).resolve()
        if resolved == target:
            relation = "is"
        elif resolved.is_relative_to(target):
            relation = "contains"
        elif target.is_relative_to(resolved):
            relation = "is inside"
        else:
            continue
        what = f"{label} ({source})" if label else str(source)
        raise ConfigError(
            f"{option} {out} {relation} {what}, an input of this command: writing there could destroy it; "
            f"choose another {option}"
        )
    return target


def open_new(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> IO:
    """A fresh file at `path` inside an output folder: whatever is there is removed first (a planted symlink is
    removed, its target untouched), and the file is created exclusively without following symlinks, so writing
    can never land outside the folder."""
    path = Path(path)
    path.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o644)
    return os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)


_HELD_LOCKS: set[int] = set()  # descriptors of the locks this process holds


def _close_inherited_locks() -> None:
    """In a forked child (a DataLoader worker): drop the copies of the parent's lock descriptors, so the lock goes
    with the parent (a flock lasts while any descriptor of it is open)."""
    for fd in list(_HELD_LOCKS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)

_NO_LOCKING = {getattr(errno, name) for name in ("ENOLCK", "EOPNOTSUPP", "ENOTSUP", "ENOSYS") if hasattr(errno, name)}


@contextmanager
def exclusive_lock(path: str | os.PathLike, command: str, target: str | os.PathLike | None = None) -> Iterator[None]:
    """Hold an advisory lock on `path` (created if missing) while the block runs, or refuse at once when another
    process holds it; `target` names what the lock guards (default: the lock's folder). The kernel drops the lock
    when its process ends, kill -9 included: no stale lock to clear. Where the filesystem has no locks (some
    network mounts) the block runs unlocked, with a warning."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    path = Path(path)
    refuse_symlink(path)
    try:  # read-only is enough for flock, and opens a lock file another user created
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot open the lock file {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another {command} is writing to {target or path.parent}; wait for it to end, or choose another --out"
            ) from None
        except OSError as exc:
            if exc.errno not in _NO_LOCKING:
                raise ConfigError(f"cannot lock {path}: {exc.strerror}") from None
            logging.getLogger("vlmkit").warning(
                "%s: this filesystem has no file locks; nothing stops a second %s writing there", path.parent, command
            )
        _HELD_LOCKS.add(fd)
        yield
    finally:
        _HELD_LOCKS.discard(fd)
        os.close(fd)


def refuse_symlink(path: Path) -> None:
    """Outputs are never written through a symlink (it could point anywhere on the machine)."""
    if path.is_symlink():
        raise DataError(
            f"is a symbolic link (to {os.readlink(path)}); vlmkit does not write through links in its output "
            "folders: remove it",
            path=path,
        )


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Hard-link source to target (no second copy of a media file on disk), or copy it where links fail
    (another filesystem, or links not allowed)."""
    try:
        os.link(source, target)
    except OSError:
        import shutil

        shutil.copy2(source, target)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_json_default, allow_nan=False)


class JsonlAppender:
    """Append-only JSONL writer; each line is flushed (and optionally fsynced) before the call returns.

    Opening repairs a torn last line left by a crash (kill -9 mid-write), so resumed runs
    never read half a record.
    """

    def __init__(self, path: str | os.PathLike, fsync: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        refuse_symlink(self.path)
        truncate_torn_tail(self.path)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        self._handle = os.fdopen(fd, "a", encoding="utf-8")
        self._fsync = fsync

    def write(self, obj: Any) -> None:
        self._handle.write(dumps_line(obj) + "\n")
        self._handle.flush()
        if self._fsync:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def truncate_torn_tail(path: Path) -> None:
    """Drop a trailing partial line (no final newline) so appends start on a clean line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        data = handle.read()
        handle.truncate(data.rfind(b"\n") + 1)


def iter_jsonl(path: str | os.PathLike, *, skip_torn_tail: bool = False) -> Iterator[tuple[int, Any]]:
    """Stream (line_number, object) for each non-blank line; a bad line raises DataError naming it.

    skip_torn_tail: a final line with no newline that fails to parse is the remains of a crashed append
    (kill -9 mid-write); skip it instead of failing.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path=path)
    from .json_limits import JsonLimitError, iter_lines, loads_line, size_error

    with open(path, "rb") as handle:
        for number, raw in iter_lines(handle):
            if raw is None:
                raise DataError(size_error(), path=path, record=f"line {number}")
            if not raw.strip():
                continue
            try:
                yield number, loads_line(raw)
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"not valid UTF-8 ({exc.reason} at byte {exc.start})", path=path, record=f"line {number}"
                ) from None
            except JsonLimitError as exc:
                raise DataError(str(exc), path=path, record=f"line {number}") from None
            except json.JSONDecodeError as exc:
                if skip_torn_tail and not raw.endswith(b"\n"):
                    return
                raise DataError(
                    f"malformed JSON: {exc.msg} (column {exc.colno})", path=path, record=f"line {number}"
                ) from None


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    return [obj for _, obj in iter_jsonl(path)]


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    return atomic_write_text(path, "".join(dumps_line(row) + "\n" for row in rows))


def read_yaml_mapping(path: str | os.PathLike, what: str = "file") -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty file -> {}); ConfigError names the file and the problem."""
    import yaml

    from .errors import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data
