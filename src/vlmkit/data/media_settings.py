"""How media are prepared for a model: image resolution bounds and video frame sampling.

One type with one validation (positive values, min_pixels <= max_pixels, nframes or fps but not both) and one
constructor from a run config, so training, inference, evaluation and the server resize images and sample
frames the same way. Only the standard library is imported here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError

FIELDS = ("min_pixels", "max_pixels", "nframes", "fps", "max_frames")


def media_problem(
    min_pixels: Any = None, max_pixels: Any = None, nframes: Any = None, fps: Any = None, max_frames: Any = 64
) -> str | None:
    """The first thing wrong with these settings, or None: the one rule every caller shares."""
    for name, value in zip(FIELDS, (min_pixels, max_pixels, nframes, fps, max_frames)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            return f"{name} must be positive, not {value!r}"
    if nframes is not None and fps is not None:
        return "set either nframes or fps for video sampling, not both"
    if min_pixels is not None and max_pixels is not None and min_pixels > max_pixels:
        return f"min_pixels {min_pixels} is above max_pixels {max_pixels}"
    return None


@dataclass(frozen=True)
class MediaSettings:
    """Resolution and frame sampling applied when media are loaded and processed (validated on creation)."""

    min_pixels: int | None = None
    max_pixels: int | None = None
    nframes: int | None = None
    fps: float | None = None
    max_frames: int = 64

    def __post_init__(self) -> None:
        problem = media_problem(self.min_pixels, self.max_pixels, self.nframes, self.fps, self.max_frames)
        if problem:
            raise ConfigError(problem)

    @classmethod
    def from_config(cls, config: Any) -> MediaSettings:
        """From a run config: a path to its YAML (e.g. RUN_DIR/config.yaml), a RunConfig, or its data section."""
        if isinstance(config, (str, os.PathLike)):
            from ..config import load_config

            config = load_config(config)
        data = getattr(config, "data", config)
        return cls(**{name: getattr(data, name) for name in FIELDS})

    def override(
        self,
        *,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        nframes: int | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
    ) -> MediaSettings:
        """These settings with every given value replacing its own. nframes and fps exclude each other, so
        giving one clears the other (giving both is an error)."""
        if nframes is not None and fps is not None:
            raise ConfigError(media_problem(nframes=nframes, fps=fps))
        given = {"min_pixels": min_pixels, "max_pixels": max_pixels, "max_frames": max_frames}
        changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if nframes is not None:
            changes.update(nframes=nframes, fps=None)
        elif fps is not None:
            changes.update(fps=fps, nframes=None)
        problem = media_problem(**{**{k: getattr(self, k) for k in FIELDS}, **changes})
        if problem:
            raise ConfigError(problem)
        return replace(self, **changes)
