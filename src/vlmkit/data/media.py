"""Image and video loading: every stage turns a media reference into pixels through this module.

Images come from a path, an http(s) URL, a `data:image/...;base64,` URL, bytes or a PIL image, and always come
back the same way: fully decoded (a truncated file fails here, not in a training step), RGB, EXIF orientation
applied, transparency composited on white. Limits are checked before any decoding: bytes (file size,
Content-Length, the streamed download) and pixels (the header size, read by PIL's lazy open), so a
decompression bomb never gets allocated. Videos are decoded with PyAV and sampled to `nframes` evenly spaced
frames or to `fps` frames per second with a cap.

Every failure is a `MediaError(kind, source, reason)`; no PIL, av or httpx exception escapes.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image, ImageOps

from ..errors import ConfigError, MediaError

logger = logging.getLogger(__name__)

DEFAULT_PIXEL_CAP = 8192 * 8192  # 67 Mpx: a 600 dpi A4 scan fits; ~200 MB once decoded to RGB
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_VIDEO_FPS = 2.0  # the sampling rate Qwen2-VL / Qwen3-VL were trained with

# Stored as-is by `storable_image` when upright: every tool reads these; re-encoding would only lose quality.
KEEP_AS_IS_FORMATS = ("JPEG", "PNG", "WEBP")

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image]


# --- images -------------------------------------------------------------------------------------


def load_image(
    source: ImageSource,
    *,
    max_pixels_cap: int = DEFAULT_PIXEL_CAP,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 10.0,
    allow_remote: bool = True,
    base_dir: str | os.PathLike | None = None,
) -> Image.Image:
    """Load an image as a fully decoded RGB PIL image; any problem raises MediaError naming source and reason.

    Relative paths are resolved against `base_dir` when given. A raw base64 string is treated as a path,
    never guessed: use a data URL. Animated images and multi-page TIFFs give their first frame.
    """
    if isinstance(source, Image.Image):
        return _clean_pil_image(source, max_pixels_cap)
    data, name = read_image_source(
        source, max_bytes=max_bytes, timeout=timeout, allow_remote=allow_remote, base_dir=base_dir
    )
    return decode_image_bytes(data, name, max_pixels_cap=max_pixels_cap, max_bytes=max_bytes)


def decode_image_bytes(
    data: bytes, source_name: str, *, max_pixels_cap: int = DEFAULT_PIXEL_CAP, max_bytes: int = DEFAULT_MAX_BYTES
) -> Image.Image:
    """Decode encoded image bytes (e.g. a parquet `{bytes, path}` cell) into a clean RGB image."""
    return _to_clean_rgb(_open_fully(data, source_name, max_pixels_cap, max_bytes), source_name)


def read_image_source(
    source: str | os.PathLike | bytes | bytearray | memoryview,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 10.0,
    allow_remote: bool = True,
    base_dir: str | os.PathLike | None = None,
) -> tuple[bytes, str]:
    """The encoded bytes behind a path / URL / data URL / bytes source, and a name for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return data, f"<{len(data)} bytes>"
    if isinstance(source, str):
        scheme = source[:8].lower()
        if scheme.startswith(("http://", "https://")):
            if not allow_remote:
                raise MediaError("image", source, "remote URLs are not allowed here (allow_remote=False)")
            return fetch_url(source, timeout=timeout, max_bytes=max_bytes), source
        if scheme.startswith("data:"):
            return _decode_data_url(source, max_bytes), source
        if scheme.startswith("file://"):
            source = unquote(urlparse(source).path)
        elif _has_url_scheme(source):
            raise MediaError("image", source, "unsupported URL scheme (use a path, file://, http(s):// or data: URL)")
        if not source:
            raise MediaError("image", "''", "empty path")
    elif not isinstance(source, os.PathLike):
        raise MediaError("image", f"<{type(source).__name__}>", "unsupported source type")
    path = Path(source)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return read_media_file(path, "image", max_bytes=max_bytes), str(path)


def _has_url_scheme(text: str) -> bool:
    """'s3://...', 'gs://...': an RFC 3986 scheme of two or more characters (so 'C://x' stays a path)."""
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]+://", text) is not None


def storable_image(
    source: ImageSource,
    *,
    max_pixels_cap: int = DEFAULT_PIXEL_CAP,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 10.0,
    allow_remote: bool = True,
    base_dir: str | os.PathLike | None = None,
) -> tuple[bytes, str]:
    """Bytes and file suffix for storing an image in a dataset's content-addressed media folder.

    The image is always fully decoded once, so a corrupt file fails at import and not in training. Upright
    JPEG, PNG and WebP bytes are stored unchanged: no generation loss, and an image's hash does not depend on
    our encoder (CMYK and transparency are handled at every load). Everything else (an EXIF-rotated photo,
    BMP, TIFF, GIF, ..., or a PIL image without its bytes) is stored as a lossless PNG of the clean upright
    RGB image, so any tool that opens the stored file sees what the model sees.
    """
    if isinstance(source, Image.Image):
        return encode_image(_clean_pil_image(source, max_pixels_cap), "PNG"), ".png"
    data, name = read_image_source(
        source, max_bytes=max_bytes, timeout=timeout, allow_remote=allow_remote, base_dir=base_dir
    )
    raw = _open_fully(data, name, max_pixels_cap, max_bytes)
    if raw.format in KEEP_AS_IS_FORMATS and _exif_orientation(raw) in (0, 1):
        return data, image_suffix(raw.format)
    return encode_image(_to_clean_rgb(raw, name), "PNG"), ".png"


def _exif_orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))  # 0x0112 = Orientation
    except Exception:
        return 1  # unreadable EXIF is ignored at load too


def encode_image(image: Image.Image, format: str = "PNG") -> bytes:
    """Encode an image; PNG and WebP losslessly, JPEG at quality 95."""
    fmt = _format_name(format)
    buffer = io.BytesIO()
    options = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}.get(fmt, {})
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def image_suffix(format: str) -> str:
    """File suffix for a PIL format name: "PNG" -> ".png", "JPEG" -> ".jpg"."""
    fmt = _format_name(format)
    preferred = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
    if fmt in preferred:
        return preferred[fmt]
    suffixes = [ext for ext, name in Image.registered_extensions().items() if name == fmt]
    if not suffixes:
        raise ValueError(f"unknown image format {format!r}")
    return suffixes[0]


def _format_name(format: str) -> str:
    fmt = format.upper().lstrip(".")
    return {"JPG": "JPEG", "TIF": "TIFF"}.get(fmt, fmt)


def _open_fully(data: bytes, name: str, max_pixels_cap: int, max_bytes: int) -> Image.Image:
    """Open lazily, check the header size against the pixel cap, then decode every byte."""
    if not data:
        raise MediaError("image", name, "empty (0 bytes)")
    if len(data) > max_bytes:
        raise MediaError("image", name, f"{_size(len(data))}, over the {_size(max_bytes)} limit (max_bytes)")
    # PIL warns above Image.MAX_IMAGE_PIXELS and refuses above twice that. The warning becomes an error unless
    # the caller's cap is higher (then the caller decided). Note: catch_warnings is process-global.
    pil_limit = Image.MAX_IMAGE_PIXELS or math.inf
    try:
        with warnings.catch_warnings():
            action = "ignore" if max_pixels_cap > pil_limit else "error"
            warnings.simplefilter(action, Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_pixels(image.size, name, max_pixels_cap)
            image.load()
    except MediaError:
        raise
    except Image.UnidentifiedImageError:
        raise MediaError("image", name, f"not an image: {describe_bytes(data)}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError("image", name, f"too many pixels ({exc})") from None
    except Exception as exc:  # PIL plugins raise OSError, SyntaxError, ValueError, struct.error, ...
        raise MediaError("image", name, f"corrupt or truncated image data ({exc})") from None
    return image


def _check_pixels(size: tuple[int, int], name: str, cap: int) -> None:
    width, height = size
    if width * height > cap:
        raise MediaError(
            "image", name, f"{width}x{height} = {width * height:,} pixels, over the cap of {cap:,} (max_pixels_cap)"
        )


def _clean_pil_image(image: Image.Image, max_pixels_cap: int) -> Image.Image:
    """Same guarantees for a caller's PIL image; works on a copy so the caller's object is untouched."""
    name = getattr(image, "filename", "") or f"<PIL {image.format or image.mode} image {image.width}x{image.height}>"
    _check_pixels(image.size, name, max_pixels_cap)
    try:
        image = image.copy()  # forces a full decode of a lazily opened image
    except Exception as exc:
        raise MediaError("image", name, f"corrupt or truncated image data ({exc})") from None
    return _to_clean_rgb(image, name)


def _to_clean_rgb(image: Image.Image, name: object) -> Image.Image:
    """EXIF orientation applied; transparency composited on white; 16-bit scaled, not clipped; RGB."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception:
        pass  # malformed EXIF: the pixels are still valid, keep them as stored
    try:
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        if image.mode.startswith("I;16") or (image.mode == "I" and image.getextrema()[1] > 255):
            # PIL's convert() clips 16-bit values at 255, which turns most 16-bit images white.
            levels = np.asarray(image, dtype=np.float32) / 257.0
            image = Image.fromarray(levels.clip(0, 255).round().astype(np.uint8), "L")
        elif image.mode == "F":  # float pixels: 0..1 is the usual range; convert() would make them black
            levels = np.asarray(image, dtype=np.float32)
            levels = levels * 255.0 if levels.size and levels.max() <= 1.0 else levels
            image = Image.fromarray(levels.clip(0, 255).round().astype(np.uint8), "L")
        return image if image.mode == "RGB" else image.convert("RGB")
    except ValueError as exc:  # e.g. LAB: Pillow has no direct conversion to RGB
        raise MediaError("image", name, f"colour mode {image.mode} can't be converted to RGB ({exc})") from None


def fit_size(
    height: int, width: int, *, min_pixels: int | None = None, max_pixels: int | None = None, factor: int = 28
) -> tuple[int, int]:
    """Qwen's `smart_resize` rule, as (height, width).

    Each side is rounded to the nearest multiple of `factor`. If that area is above `max_pixels`, both sides
    are scaled by sqrt(h*w / max_pixels) and floored to multiples of `factor`; if it is below `min_pixels`,
    scaled up and ceiled. Finally no side is below `factor` (without a min_pixels a tiny side would round to
    0). The aspect ratio is kept as closely as the grid allows; an extreme aspect ratio can end above
    `max_pixels` because of that floor. With the same bounds this equals transformers' Qwen2-VL
    `smart_resize` (which also refuses aspect ratios over 200; we don't). Qwen2/2.5-VL use factor 28
    (patch 14 x merge 2), Qwen3-VL 32 (patch 16 x merge 2).
    """
    if min_pixels is not None and max_pixels is not None and min_pixels > max_pixels:
        raise ConfigError(f"min_pixels ({min_pixels}) is larger than max_pixels ({max_pixels})")
    if height < 1 or width < 1 or factor < 1:
        raise ConfigError(f"cannot fit a {width}x{height} image to multiples of {factor}")
    new_h = round(height / factor) * factor
    new_w = round(width / factor) * factor
    if max_pixels is not None and new_h * new_w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        new_h = max(factor, math.floor(height / beta / factor) * factor)
        new_w = max(factor, math.floor(width / beta / factor) * factor)
    elif min_pixels is not None and new_h * new_w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        new_h = math.ceil(height * beta / factor) * factor
        new_w = math.ceil(width * beta / factor) * factor
    return max(factor, new_h), max(factor, new_w)


def fit_pixels(
    image: Image.Image, min_pixels: int | None = None, max_pixels: int | None = None, factor: int = 28
) -> Image.Image:
    """Resize (bicubic, as the Qwen processors do) to the `fit_size` rule; for families whose processors
    take no min/max pixels, and for previews. Qwen processors apply this rule themselves."""
    height, width = fit_size(image.height, image.width, min_pixels=min_pixels, max_pixels=max_pixels, factor=factor)
    if (width, height) == image.size:
        return image.copy()
    return image.resize((width, height), Image.Resampling.BICUBIC)


# --- sources shared by images and videos ---------------------------------------------------------


def read_media_file(path: Path, kind: str, *, max_bytes: int | None = None) -> bytes:
    """Read a whole file, with errors for missing, directory, empty and over-size files."""
    size = _check_file(path, kind)
    if max_bytes is not None and size > max_bytes:
        raise MediaError(kind, path, f"file is {_size(size)}, over the {_size(max_bytes)} limit (max_bytes)")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MediaError(kind, path, f"cannot read file ({exc.strerror or exc})") from None


def _check_file(path: Path, kind: str) -> int:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise MediaError(kind, path, "file not found") from None
    except OSError as exc:
        raise MediaError(kind, path, f"cannot read file ({exc.strerror or exc})") from None
    if path.is_dir():
        raise MediaError(kind, path, "is a directory, not a file")
    if stat.st_size == 0:
        raise MediaError(kind, path, "empty file (0 bytes)")
    return stat.st_size


def fetch_url(url: str, *, timeout: float = 10.0, max_bytes: int = DEFAULT_MAX_BYTES, kind: str = "image") -> bytes:
    """GET a URL with a total time limit and a size cap enforced while streaming (not trusting headers)."""
    import httpx

    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        # Some hosts (Wikimedia among them) refuse httpx's default User-Agent.
        headers = {"User-Agent": "vlmkit-media-loader"}
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True, headers=headers) as response:
            if response.status_code >= 400:
                raise MediaError(kind, url, f"HTTP {response.status_code} {response.reason_phrase}".rstrip())
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise MediaError(kind, url, f"{_size(int(declared))}, over the {_size(max_bytes)} limit (max_bytes)")
            received = 0
            for chunk in response.iter_bytes():  # decoded bytes, so gzip bombs count at their real size
                received += len(chunk)
                if received > max_bytes:
                    raise MediaError(kind, url, f"download exceeds the {_size(max_bytes)} limit (max_bytes)")
                if time.monotonic() > deadline:
                    raise MediaError(kind, url, f"download timed out after {timeout:g}s")
                chunks.append(chunk)
    except MediaError:
        raise
    except httpx.TimeoutException:
        raise MediaError(kind, url, f"download timed out after {timeout:g}s") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise MediaError(kind, url, f"invalid URL ({exc})") from None
    except httpx.ConnectError as exc:
        raise MediaError(kind, url, f"cannot connect ({exc})") from None
    except httpx.HTTPError as exc:
        raise MediaError(kind, url, f"download failed ({type(exc).__name__}: {exc})") from None
    data = b"".join(chunks)
    if not data:
        raise MediaError(kind, url, "empty response (0 bytes)")
    return data


def _decode_data_url(url: str, max_bytes: int) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma:
        raise MediaError("image", url, "malformed data URL (no ',' before the data)")
    mime, *params = header[len("data:") :].split(";")
    if "base64" not in (p.strip().lower() for p in params):
        raise MediaError("image", url, "only base64 data URLs are supported (data:image/...;base64,...)")
    if mime.strip() and not mime.strip().lower().startswith("image/"):
        raise MediaError("image", url, f"data URL holds {mime.strip()}, not an image")
    payload = "".join(payload.split())
    if len(payload) // 4 * 3 > max_bytes:
        raise MediaError("image", url, f"data URL is over the {_size(max_bytes)} limit (max_bytes)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError("image", url, f"invalid base64 in data URL ({exc})") from None


_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or .docx/.xlsx/.npz)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg audio/video file"),
    (b"\x93NUMPY", "a NumPy .npy array"),
)


def describe_bytes(data: bytes) -> str:
    """A cheap guess at what some bytes are, for 'not an image' / 'not a video' messages."""
    head = data[:512]
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return f"looks like {what}"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
            return "looks like a HEIC/HEIF image, which this Pillow cannot read (convert it to JPEG/PNG)"
        if brand in (b"avif", b"avis"):
            return "looks like an AVIF image that this Pillow could not decode (convert it to JPEG/PNG)"
        return "looks like an MP4/MOV video"
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"WAVE"):
        return "looks like " + ("an AVI video" if head[8:12] == b"AVI " else "a WAV audio file")
    try:
        text = head.decode("utf-8").lstrip()
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a multi-byte character cut by the 512-byte window
            return f"unrecognised bytes starting {head[:8].hex(' ')}"
        text = head[: exc.start].decode("utf-8").lstrip()
    if text.startswith("<"):
        return "looks like HTML/XML text"
    if text.startswith(("{", "[")):
        return "looks like JSON text"
    return "looks like plain text"


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


# --- videos ---------------------------------------------------------------------------------------


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

        _check_file(self.path, "video")
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
