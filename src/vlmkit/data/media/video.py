"""Videos: sampled frames decoded with PyAV, with the timing facts transformers' video processors need."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, MediaError
from .sources import DEFAULT_PIXEL_CAP, check_file, describe_bytes

logger = logging.getLogger(__name__)

DEFAULT_VIDEO_FPS = 2.0  # the sampling rate Qwen2-VL / Qwen3-VL were trained with


@dataclass
class Video:
    """Sampled frames of a video plus the timing facts a processor needs to place them in time."""

    frames: np.ndarray  # uint8 [T, H, W, 3], RGB
    fps: float  # frame rate of the source file (0.0 if the file states none)
    duration_s: float  # duration of the source: total_frames / fps
    frame_indices: list[int]  # index in the source of each sampled frame
    source: str
    total_frames: int | None = None  # frames in the source, counted when the header does not say

    @property
    def sampled_fps(self) -> float:
        """Effective rate of the sampled frames over the source's duration (as transformers'
        VideoMetadata.sampled_fps computes it; Qwen2.5-VL turns it into seconds per temporal patch)."""
        if self.total_frames and self.fps:
            return len(self.frame_indices) / self.total_frames * self.fps
        return len(self.frame_indices) / self.duration_s if self.duration_s > 0 else self.fps

    def metadata(self) -> dict[str, Any]:
        """The fields of transformers' VideoMetadata for these frames."""
        return {
            "total_num_frames": self.total_frames if self.total_frames is not None else len(self.frame_indices),
            "fps": self.fps or None,
            "duration": self.duration_s or None,
            "width": int(self.frames.shape[2]),
            "height": int(self.frames.shape[1]),
            "frames_indices": list(self.frame_indices),
            "video_backend": "pyav",
        }

    def to_processor_input(self, *, min_frames: int = 2) -> tuple[np.ndarray, dict[str, Any]]:
        """(frames, metadata) for a transformers processor: pass `videos=[frames, ...]`,
        `video_metadata=[metadata, ...]` and `do_sample_frames=False` (`video_processor_kwargs` does it).

        The frames are already sampled: `do_sample_frames=False` stops a processor from sampling again (Qwen3-VL
        samples by default, over `total_num_frames` of the metadata, which would index past our frames). The
        metadata carries the source fps and the sampled indices: Qwen3-VL writes `<t seconds>` from
        indices / fps, Qwen2.5-VL times its temporal positions from `sampled_fps`. A clip shorter than
        `min_frames` gets its last frame repeated: Qwen3-VL refuses fewer frames than its temporal patch (2),
        and Qwen2-VL pads the same way itself. Pass `min_frames=1` for families without that need.
        """
        frames, meta = self.frames, self.metadata()
        if 0 < len(frames) < min_frames:
            missing = min_frames - len(frames)
            frames = np.concatenate([frames, np.repeat(frames[-1:], missing, axis=0)])
            meta["frames_indices"] = meta["frames_indices"] + [meta["frames_indices"][-1]] * missing
        return frames, meta


def video_processor_kwargs(videos: list[Video], *, min_frames: int = 2) -> dict[str, Any]:
    """`videos`, `video_metadata` and `do_sample_frames=False` for one processor call over several videos."""
    pairs = [video.to_processor_input(min_frames=min_frames) for video in videos]
    return {
        "videos": [frames for frames, _ in pairs],
        "video_metadata": [meta for _, meta in pairs],
        "do_sample_frames": False,
    }


def load_video(
    path: str | os.PathLike,
    *,
    nframes: int | None = None,
    fps: float | None = None,
    max_frames: int = 64,
    min_frames: int = 1,
    max_pixels_cap: int = DEFAULT_PIXEL_CAP,
    max_frame_pixels: int | None = None,
) -> Video:
    """Decode sampled frames of a video file with PyAV.

    `nframes`: that many frames evenly spaced over the whole video (np.linspace over the frame indices,
    rounded), clamped to the frames available; `len(video.frame_indices)` and `video.total_frames` record
    what was actually there. `fps`: that many frames per second of video, between `min_frames` and
    `max_frames` (a long video gets `max_frames` evenly spaced frames). Neither: fps=DEFAULT_VIDEO_FPS.
    `max_pixels_cap` refuses videos whose frames are larger, before decoding; `max_frame_pixels` downscales
    each kept frame (aspect ratio kept) to bound memory. Frames are counted by demuxing when the container
    does not state a count (Matroska/WebM, variable frame rate), and if the stated count proves too high (a
    cut-off file, or a decode error part-way, which is logged) the indices are resampled over the frames that
    really decode. A phone video's display rotation is applied, so frames come out the way players show them.
    """
    if nframes is not None and fps is not None:
        raise ConfigError("load_video: pass nframes or fps, not both")
    if nframes is not None and nframes < 1:
        raise ConfigError(f"load_video: nframes must be at least 1, got {nframes}")
    if fps is not None and fps <= 0:
        raise ConfigError(f"load_video: fps must be positive, got {fps}")
    if not 1 <= min_frames <= max_frames:
        raise ConfigError(f"load_video: need 1 <= min_frames <= max_frames, got {min_frames} and {max_frames}")
    if nframes is None and fps is None:
        fps = DEFAULT_VIDEO_FPS

    path = Path(path)
    info = probe_video(path)
    if info["width"] * info["height"] > max_pixels_cap:
        raise MediaError(
            "video", path, f"frames are {info['width']}x{info['height']}, over the cap of {max_pixels_cap:,} pixels"
        )
    total, source_fps = info["frames"], info["fps"]
    if total == 0:
        raise MediaError("video", path, "video has no frames")
    out_size = _frame_size(info["width"], info["height"], max_frame_pixels)

    indices = _sample_indices(path, total, source_fps, nframes, fps, min_frames, max_frames)
    frames, decoded = _decode_frames(path, indices, out_size)
    if len(frames) < len(indices):  # the header promised more frames than the stream holds
        if decoded == 0:
            raise MediaError("video", path, "video has no decodable frames")
        total = decoded
        indices = _sample_indices(path, total, source_fps, nframes, fps, min_frames, max_frames)
        frames, _ = _decode_frames(path, indices, out_size)
        if len(frames) < len(indices):
            raise MediaError("video", path, f"only {len(frames)} of {len(indices)} sampled frames decode")
    return Video(
        frames=np.stack(frames),
        fps=source_fps,
        duration_s=total / source_fps if source_fps else info["duration"],
        frame_indices=indices,
        source=str(path),
        total_frames=total,
    )


@dataclass(frozen=True)
class VideoPlan:
    """The frames `load_video` would sample from a file, and their size, known without decoding any."""

    frame_indices: list[int]
    fps: float  # the source's frame rate
    width: int
    height: int


def plan_video(
    path: str | os.PathLike, *, nframes: int | None = None, fps: float | None = None, max_frames: int = 64
) -> VideoPlan:
    """What `load_video(path, nframes=, fps=, max_frames=)` samples, from the headers and packets only (used to
    count a video's tokens exactly before training). A file whose header promises more frames than decode is
    resampled by load_video; the plan cannot know that."""
    path = Path(path)
    info = probe_video(path)
    if nframes is None and fps is None:
        fps = DEFAULT_VIDEO_FPS
    indices = _sample_indices(path, info["frames"], info["fps"], nframes, fps, 1, max_frames)
    return VideoPlan(indices, info["fps"], info["width"], info["height"])


def probe_video(path: str | os.PathLike) -> dict[str, Any]:
    """frames, fps, duration (s), width, height and codec of a video, reading headers and packets only.

    `frames` comes from the container, or from counting packets when the container does not say; a
    container with a video stream but no frames gives frames=0 (load_video refuses it).
    """
    path = Path(path)
    with _open_video(path) as (container, stream):
        source_fps = float(stream.average_rate or stream.guessed_rate or 0)
        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000  # AV_TIME_BASE
        frames = stream.frames
        if not frames:
            try:
                frames = sum(1 for packet in container.demux(stream) if packet.size)
            except Exception as exc:
                raise MediaError("video", path, f"cannot read packets ({_av_reason(exc)})") from None
        if not source_fps and frames and duration:
            source_fps = frames / duration
        return {
            "frames": int(frames),
            "fps": source_fps,
            "duration": frames / source_fps if source_fps else duration,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "codec": stream.codec_context.name,
        }


class _open_video:
    """Context manager yielding (container, first video stream); every failure becomes a MediaError."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import av

        check_file(self.path, "video")
        try:
            self.container = av.open(str(self.path))
        except Exception as exc:
            raise MediaError("video", self.path, f"not a readable video ({_av_reason(exc)}; {self._sniff()})") from None
        try:
            fmt = self.container.format.name
            if fmt == "image2" or fmt.endswith("_pipe"):
                raise MediaError("video", self.path, f"is a still image ({fmt.removesuffix('_pipe')}), not a video")
            if not self.container.streams.video:
                kinds = sorted({s.type for s in self.container.streams}) or ["none"]
                raise MediaError("video", self.path, f"no video stream (streams: {', '.join(kinds)})")
        except BaseException:
            self.container.close()
            raise
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        return self.container, stream

    def __exit__(self, *exc: object) -> None:
        self.container.close()

    def _sniff(self) -> str:
        with open(self.path, "rb") as handle:
            return describe_bytes(handle.read(512))


def _sample_indices(
    path: Path, total: int, source_fps: float, nframes: int | None, fps: float | None, min_frames: int, max_frames: int
) -> list[int]:
    if nframes is not None:
        count = min(nframes, total)
    else:
        if not source_fps:
            raise MediaError("video", path, "cannot sample by fps: the file states no frame rate (pass nframes)")
        count = max(min_frames, min(round(total / source_fps * fps), max_frames))
        count = min(count, total)
    # Spacing >= 1 whenever count <= total, so the rounded indices are distinct.
    return np.linspace(0, total - 1, count).round().astype(int).tolist()


def _frame_size(width: int, height: int, max_frame_pixels: int | None) -> tuple[int, int] | None:
    if not max_frame_pixels or width * height <= max_frame_pixels:
        return None
    scale = math.sqrt(max_frame_pixels / (width * height))
    # Even sides: yuv420 and most processors prefer them; never below 2 pixels.
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _decode_frames(path: Path, indices: list[int], out_size: tuple[int, int] | None) -> tuple[list[np.ndarray], int]:
    """Decode in order, keeping the wanted indices; returns (frames, frames decoded before stopping).

    Only wanted frames are converted to RGB, and decoding stops after the last one. A decode error after
    some frames ends the stream there (the frames before it are valid and kept); before any, it is fatal.
    """
    wanted, last = set(indices), indices[-1]
    frames: list[np.ndarray] = []
    decoded = 0
    with _open_video(path) as (container, stream):
        try:
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                if index in wanted:
                    frames.append(_frame_to_rgb(frame, out_size))
                if index >= last:
                    break
        except Exception as exc:
            if decoded == 0:
                raise MediaError("video", path, f"decoding failed at the first frame ({_av_reason(exc)})") from None
            logger.warning("video %s: decoding stopped after %d frames (%s)", path, decoded, _av_reason(exc))
    return frames, decoded


def _frame_to_rgb(frame: Any, out_size: tuple[int, int] | None) -> np.ndarray:
    """uint8 [H, W, 3], scaled to `out_size` (width, height) and turned upright by the display rotation."""
    if out_size:
        frame = frame.reformat(width=out_size[0], height=out_size[1])
    pixels = frame.to_ndarray(format="rgb24")
    # `rotation` is the counter-clockwise turn (degrees) a player applies; np.rot90 also turns counter-clockwise.
    quarter_turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, quarter_turns)) if quarter_turns else pixels


def _av_reason(exc: Exception) -> str:
    # av errors carry the FFmpeg message in strerror; str(exc) repeats the path we already print.
    return getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}"
