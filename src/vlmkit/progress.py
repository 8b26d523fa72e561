"""Progress that reads well in a terminal and in a log file.

On a terminal: one tqdm bar. Off a terminal (`| tee log`, CI, nohup): no carriage returns or cursor codes, but one
plain line at most every VLMKIT_PROGRESS_SECONDS (default 10) and a last line at the end, e.g.

    import: 12,000/30,000 rec (40%), 1,480 rec/s, ETA 0:00:12, samples=11,950
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any


def on_terminal(stream: IO | None = None) -> bool:
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def interval_s() -> float:
    return float(os.environ.get("VLMKIT_PROGRESS_SECONDS", "10"))


def eta(done: float, total: float | None, rate: float | None) -> str | None:
    if not total or not rate or rate <= 0 or done >= total:
        return None
    seconds = int((total - done) / rate)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class PlainProgress:
    """The part of tqdm's interface the loops use (update, set_postfix, close), printing plain lines."""

    def __init__(self, total: int | None, desc: str, unit: str, stream: IO | None = None, initial: int = 0):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.n = self.initial = initial  # a resumed run starts at what it already has; the rate counts new work
        self.postfix: dict[str, Any] = {}
        self.started = self.last = time.monotonic()
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= interval_s():
            self.last = now
            self._print()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (self.n - self.initial) / elapsed
        count = f"{self.n:,}/{self.total:,} {self.unit} ({self.n / self.total:.0%})" if self.total else f"{self.n:,}"
        parts = [f"{self.desc}: {count}" + ("" if self.total else f" {self.unit}"), f"{rate:,.1f} {self.unit}/s"]
        left = eta(self.n, self.total, rate)
        if left:
            parts.append(f"ETA {left}")
        parts += [
            f"{key}={value:,}" if isinstance(value, int) else f"{key}={value}" for key, value in self.postfix.items()
        ]
        return ", ".join(parts)

    def _print(self) -> None:
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if not self.closed and self.n > self.initial:
            self._print()
        self.closed = True

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(total: int | None, desc: str, unit: str, enabled: bool | None = None, initial: int = 0) -> Any:
    """A tqdm bar on a terminal, plain lines elsewhere; enabled=False: silent (tests, library use)."""
    from tqdm.auto import tqdm

    if enabled is False:
        return tqdm(total=total, initial=initial, disable=True)
    if on_terminal():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
    return PlainProgress(total, desc, unit, initial=initial)


class DeferredProgress:
    """A bar for work whose size is known only once it starts (eval learns it after working out what a resumed run
    already has): nothing is drawn until `start(total, done)`, so no empty "0sample" bar comes first."""

    def __init__(self, desc: str, unit: str, enabled: bool | None = None):
        self.desc, self.unit, self.enabled = desc, unit, enabled
        self.bar: Any = None

    @property
    def n(self) -> int:
        return self.bar.n if self.bar is not None else 0

    @property
    def total(self) -> int | None:
        return self.bar.total if self.bar is not None else None

    def start(self, total: int, done: int = 0) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = progress(total, self.desc, self.unit, self.enabled, initial=done)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(*args, **kwargs)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def discard(bar: Any) -> None:
    """Close a bar after a failure: a plain progress prints no last line (the error is the last line)."""
    if isinstance(bar, PlainProgress):
        bar.closed = True
    else:
        bar.close()


def quiet_library_bars() -> None:
    """Off a terminal, transformers' and the hub's own bars (loading weights, writing shards) would add lines of
    carriage returns to the log; turn them off (the terminal keeps them)."""
    if on_terminal():
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:  # pragma: no cover - an older hub
        pass
