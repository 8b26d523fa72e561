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


def _short(source: object, limit: int = 120) -> str:
    text = str(source)
    return text if len(text) <= limit else text[:limit] + "…"
