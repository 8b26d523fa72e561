"""Images: any source to a fully decoded, upright RGB PIL image, the bytes an importer stores, and an image
file's size from its header. How a family resizes an image is its adapter's business (vlmkit.models)."""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image, ImageOps

from ...errors import MediaError
from .sources import (
    DEFAULT_MAX_BYTES,
    DEFAULT_PIXEL_CAP,
    decode_data_url,
    describe_bytes,
    fetch_url,
    human_size,
    read_media_file,
)

# Stored as-is by `storable_image` when upright: every tool reads these; re-encoding would only lose quality.
KEEP_AS_IS_FORMATS = ("JPEG", "PNG", "WEBP")

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image


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
            return decode_data_url(source, max_bytes), source
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
        raise MediaError("image", name, f"{human_size(len(data))}, over the {human_size(max_bytes)} limit (max_bytes)")
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


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of a local image file as `load_image` returns it (EXIF rotation applied), from its
    header only: what the token-cost estimates need without decoding pixels."""
    with Image.open(path) as image:
        width, height = image.size
        return (height, width) if _exif_orientation(image) in (5, 6, 7, 8) else (width, height)


# --- sources shared by images and videos ---------------------------------------------------------
