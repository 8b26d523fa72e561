"""One exception family for every error a user can cause.

The CLI turns a VlmkitError into `error: <message>` and exit code 2, never a traceback.
Messages name the file, the record and the reason.
"""

from __future__ import annotations


class VlmkitError(Exception):
    """An error caused by the user's input or configuration, with a message that says what to fix."""


class DataError(VlmkitError):
    """A dataset file or record is malformed."""

    def __init__(self, reason: str, *, path: object = None, record: object = None, field: str | None = None):
        self.reason, self.path, self.record, self.field = reason, path, record, field
        where = []
        if path is not None:
            where.append(str(path))
        if record is not None:
            where.append(f"record {record}")
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join(where)}: {reason}" if where else reason)


class MediaError(VlmkitError):
    """An image or video can't be read, is unsupported, or is too large."""

    def __init__(self, kind: str, source: object, reason: str):
        self.kind, self.source, self.reason = kind, source, reason
        super().__init__(f"{kind} {_short(source)}: {reason}")


class ConfigError(VlmkitError):
    """A run configuration is invalid; the message names the key."""


class EngineGone(VlmkitError):
    """The engine can answer nothing more (the server it started has exited): a run stops here, keeping what
    it has written, instead of recording every remaining sample as failed."""


def _short(source: object, limit: int = 120) -> str:
    text = str(source)
    return text if len(text) <= limit else text[:limit] + "…"


class DiskFull(VlmkitError):
    """The disk (or quota, or file-size limit) ran out while writing."""


_DISK_FULL_TEXT = (
    "No space left on device",
    "os error 28",
    "File too large",
    "os error 27",
    "Disk quota exceeded",
    "file write failed",  # torch's PytorchStreamWriter
)


def _first(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:200]


def disk_full_message(exc: BaseException) -> str | None:
    """'no space left on the device writing FILE' for a full disk or quota (or a file-size limit) anywhere in the
    exception's chain, including torch.save's RuntimeError; None for other errors."""
    import errno

    seen = exc
    while seen is not None:
        if isinstance(seen, DiskFull):
            return str(seen)
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            where = f" writing {seen.filename}" if seen.filename else ""
            return f"no space left on the device{where} ({seen.strerror}); free some space and run again"
        text = str(seen)
        if any(marker in text for marker in _DISK_FULL_TEXT):  # torch.save and Rust tokenizers raise plain errors
            return f"no space left on the device ({_first(text)}); free some space and run again"
        seen = seen.__cause__ or seen.__context__
    return None


def as_disk_full(exc: BaseException) -> DiskFull | None:
    if isinstance(exc, DiskFull):
        return None  # already said
    message = disk_full_message(exc)
    return DiskFull(message) if message else None
