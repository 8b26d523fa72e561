"""Media settings for inference: from a run config (so inference resizes and samples frames as training did),
overridden per run by explicit values. Thin names over `MediaSettings.from_config` / `.override`, kept for
callers of the earlier functions."""

from __future__ import annotations

import os

from ..data.media_settings import MediaSettings


def media_from_config(path: str | os.PathLike) -> MediaSettings:
    """The image/video settings in the `data` section of a run config (e.g. RUN_DIR/config.yaml)."""
    return MediaSettings.from_config(path)


def override_media(base: MediaSettings, **values: int | float | None) -> MediaSettings:
    """`base` with every given value replacing its own (see `MediaSettings.override`)."""
    return base.override(**values)
