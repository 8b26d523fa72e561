"""The one `--slice START:STOP` rule of `vlmkit infer` and `vlmkit eval`: dataset positions, either side may be
empty, non-negative integers; a slice past the end of the data or selecting nothing is an error that names the
dataset size, never a silent clip."""

from __future__ import annotations

import re

from ..errors import ConfigError

SliceSpec = str | slice | tuple[int | None, int | None] | None

_SYNTAX = re.compile(r"\s*(\d*)\s*:\s*(\d*)\s*")


def slice_bounds(spec: SliceSpec) -> tuple[int | None, int | None] | None:
    """START and STOP of a spec ("a:b", ":b", "a:", a slice or a (start, stop) pair), checked for form only."""
    if spec is None:
        return None
    bounds: tuple
    if isinstance(spec, slice):
        bounds = (spec.start, spec.stop) if spec.step in (None, 1) else ("step",)
    elif isinstance(spec, tuple):
        bounds = spec
    else:
        match = _SYNTAX.fullmatch(str(spec))
        bounds = (int(match[1]) if match[1] else None, int(match[2]) if match[2] else None) if match else ()
    if len(bounds) != 2 or not all(b is None or (isinstance(b, int) and b >= 0) for b in bounds):
        raise ConfigError(f"--slice must look like START:STOP with non-negative integers (e.g. 0:100), not '{spec}'")
    return bounds[0], bounds[1]


def select_slice(spec: SliceSpec, total: int) -> slice:
    """The positions `spec` selects from `total` samples (all of them for None); out of range is an error."""
    bounds = slice_bounds(spec)
    if bounds is None:
        return slice(0, total)
    text = slice_text(spec)
    start = bounds[0] or 0
    stop = total if bounds[1] is None else bounds[1]
    if total == 0:
        raise ConfigError(f"--slice {text}: the dataset has no samples")
    if start >= total:
        raise ConfigError(f"--slice {text} is out of range: the dataset has {total} samples (indices 0 to {total - 1})")
    if stop > total:
        raise ConfigError(
            f"--slice {text} is out of range: the dataset has {total} samples, so STOP can be at most {total}"
        )
    if stop <= start:
        raise ConfigError(f"--slice {text} selects nothing: STOP must be greater than START")
    return slice(start, stop)


def slice_text(spec: SliceSpec) -> str | None:
    """ "a:b" as recorded in manifests (None when the whole dataset is used)."""
    bounds = slice_bounds(spec)
    if bounds is None:
        return None
    return ":".join("" if b is None else str(b) for b in bounds)
