"""Small deterministic media for tests and benchmarks: structured images and real encoded videos.

Every video frame carries its own index as a row of black/white blocks across the top third (bit i of the
index in block i, most significant first), so a test can read back which source frames were sampled with
`frame_index`, even after lossy encoding or resizing. Below the marker, the background colour changes and a
white square moves from frame to frame.
"""

from __future__ import annotations

import colorsys
import functools
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

MARKER_BITS = 10  # frame indices up to 1023


def make_image(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 80, 40), seed: int = 0
) -> Image.Image:
    """An RGB image: a background colour with a horizontal ramp and three seeded rectangles."""
    rng = np.random.default_rng(seed)
    pixels = np.empty((height, width, 3), np.int16)
    pixels[:] = color
    pixels += np.linspace(-30, 30, width, dtype=np.int16)[None, :, None]  # something for resizes to keep
    for _ in range(3):
        x0, y0 = int(rng.integers(0, max(1, width - 4))), int(rng.integers(0, max(1, height - 4)))
        x1, y1 = x0 + int(rng.integers(2, max(3, width // 3))), y0 + int(rng.integers(2, max(3, height // 3)))
        pixels[y0:y1, x0:x1] = rng.integers(0, 256, size=3)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def video_frame(index: int, n_frames: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """Frame `index` of a synthetic video as uint8 [H, W, 3]: index marker on top, moving square below."""
    width, height = size
    if index >= 2**MARKER_BITS:
        raise ValueError(f"frame index {index} does not fit the {MARKER_BITS}-bit marker")
    hue = index / max(1, n_frames)
    background = [round(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.6, 0.7)]
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = background
    band = height // 3
    for bit, (x0, x1) in enumerate(_marker_columns(width)):
        on = (index >> (MARKER_BITS - 1 - bit)) & 1
        frame[:band, x0:x1] = 255 if on else 0
    side = max(2, min(width, height - band) // 4)
    x = (index * 3) % max(1, width - side)
    y = band + (index * 2) % max(1, height - band - side)
    frame[y : y + side, x : x + side] = 255
    return frame


def frame_index(frame: np.ndarray) -> int:
    """Read the index marker back from a decoded frame [H, W, 3] (any size the video was scaled to)."""
    height, width = frame.shape[:2]
    band = frame[: max(1, height // 3)].mean(axis=2)
    index = 0
    for x0, x1 in _marker_columns(width):
        margin = (x1 - x0) // 4  # skip the block edges, blurred by encoding and scaling
        index = (index << 1) | int(band[:, x0 + margin : x1 - margin].mean() > 127)
    return index


def _marker_columns(width: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, width, MARKER_BITS + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


@functools.cache
def default_video_codec() -> str:
    """libx264 when this PyAV build can encode it, else MPEG-4 part 2 (in every FFmpeg build)."""
    import av

    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except Exception:
        return "mpeg4"


def write_video(
    path: str | os.PathLike,
    n_frames: int = 8,
    size: tuple[int, int] = (64, 48),
    fps: float = 4.0,
    codec: str | None = None,
    rotation: int = 0,
) -> Path:
    """Encode `n_frames` synthetic frames (see `video_frame`) at `fps`; the container follows the suffix
    (.mp4 states its frame count, .mkv/.webm do not). Sides must be even (yuv420p). `rotation` (degrees,
    counter-clockwise) is stored as display metadata, like a phone does; the pixels stay unrotated.
    Written to a temporary name and renamed, so a crash never leaves a half-written video behind."""
    import av

    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"video sides must be even for yuv420p, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or ("libvpx" if path.suffix.lower() == ".webm" else default_video_codec())
    options = {"preset": "ultrafast"} if codec == "libx264" else {}
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")  # same suffix: it picks the container
    try:
        with av.open(str(partial), "w") as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if rotation:
                stream.set_display_rotation(rotation)
            for index in range(n_frames):
                frame = av.VideoFrame.from_ndarray(video_frame(index, n_frames, size), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_empty_video(path: str | os.PathLike, size: tuple[int, int] = (64, 48), fps: float = 4.0) -> Path:
    """A container with a video stream and zero frames. Always AVI inside, whatever the suffix: MP4 drops a
    track that has no samples, and Matroska without clusters does not open at all."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        container.start_encoding()  # writes the header even though no packet follows
    return path
