"""Fixtures for the inference tests: tiny engines (loaded once per session), images of mixed sizes, a video."""

from __future__ import annotations

from pathlib import Path

import pytest
from infer_helpers import IMAGE_SIZES


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> list[Path]:
    """Five PNGs of different sizes and aspect ratios (different numbers of vision tokens)."""
    from synthetic_media import make_image

    folder = tmp_path_factory.mktemp("images")
    paths = []
    for k, (w, h) in enumerate(IMAGE_SIZES):
        path = folder / f"img{k}.png"
        make_image(w, h, color=(40 * k, 200 - 30 * k, 90), seed=k).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def video(tmp_path_factory) -> Path:
    from synthetic_media import write_video

    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", n_frames=9, size=(64, 48), fps=4.0)


@pytest.fixture(scope="session")
def engine_for(tiny_model):
    """Factory: engine_for("qwen2_vl", batch_size=8, **media_settings) -> an HFEngine on the tiny checkpoint,
    loaded once per session and combination."""
    import torch

    from vlmkit.infer import MediaSettings, load_engine

    torch.set_num_threads(1)  # the machine is shared; one thread per test process wastes the least
    cache = {}

    def load(family: str, batch_size: int = 8, **media):
        key = (family, batch_size, tuple(sorted(media.items())))
        if key not in cache:
            cache[key] = load_engine(str(tiny_model(family)), batch_size=batch_size, media=MediaSettings(**media))
        return cache[key]

    return load
