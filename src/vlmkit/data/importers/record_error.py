"""The per-record import error, on its own so that converters (base.py) and media storage (media_store.py)
can both raise it without importing each other."""

from __future__ import annotations


class RecordError(Exception):
    """One source record (or one QA pair of it) can't be imported; the runner adds file and record."""

    def __init__(self, reason: str, field: str | None = None, units: int = 1):
        super().__init__(reason)
        self.reason, self.field, self.units = reason, field, units
