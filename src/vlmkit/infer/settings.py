"""Media settings for inference: from a run config (so inference resizes and samples frames as training did),
overridden per run by explicit values."""

from __future__ import annotations

import os
from dataclasses import replace

from ..data.collate import MediaSettings
from ..errors import ConfigError


def media_from_config(path: str | os.PathLike) -> MediaSettings:
    """The image/video settings in the `data` section of a run config (e.g. RUN_DIR/config.yaml)."""
    from ..config import load_config

    data = load_config(path).data
    return MediaSettings(
        min_pixels=data.min_pixels,
        max_pixels=data.max_pixels,
        nframes=data.nframes,
        fps=data.fps,
        max_frames=data.max_frames,
    )


def override_media(
    base: MediaSettings,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    nframes: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
) -> MediaSettings:
    """`base` with every given value replacing its own. nframes and fps exclude each other, so giving one
    clears the other."""
    if nframes is not None and fps is not None:
        raise ConfigError("give nframes or fps for video sampling, not both")
    for name, value in (
        ("min_pixels", min_pixels),
        ("max_pixels", max_pixels),
        ("nframes", nframes),
        ("fps", fps),
        ("max_frames", max_frames),
    ):
        if value is not None and value <= 0:
            raise ConfigError(f"{name} must be positive, not {value}")
    merged = replace(
        base,
        min_pixels=min_pixels if min_pixels is not None else base.min_pixels,
        max_pixels=max_pixels if max_pixels is not None else base.max_pixels,
        max_frames=max_frames if max_frames is not None else base.max_frames,
    )
    if nframes is not None:
        merged = replace(merged, nframes=nframes, fps=None)
    elif fps is not None:
        merged = replace(merged, fps=fps, nframes=None)
    if merged.min_pixels is not None and merged.max_pixels is not None and merged.min_pixels > merged.max_pixels:
        raise ConfigError(f"min_pixels {merged.min_pixels} is above max_pixels {merged.max_pixels}")
    return merged
