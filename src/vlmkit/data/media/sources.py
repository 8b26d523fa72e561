"""Where media bytes come from, for images and videos alike: files, http(s) downloads, data URLs; the size
limits checked before anything is decoded; and a guess at what some bytes are when they turn out not to be
media."""

from __future__ import annotations

import base64
import binascii
import time
from pathlib import Path

from ...errors import MediaError

DEFAULT_PIXEL_CAP = 8192 * 8192  # 67 Mpx: a 600 dpi A4 scan fits; ~200 MB once decoded to RGB
DEFAULT_MAX_BYTES = 64 * 2**20


def read_media_file(path: Path, kind: str, *, max_bytes: int | None = None) -> bytes:
    """Read a whole file, with errors for missing, directory, empty and over-size files."""
    size = check_file(path, kind)
    if max_bytes is not None and size > max_bytes:
        raise MediaError(kind, path, f"file is {human_size(size)}, over the {human_size(max_bytes)} limit (max_bytes)")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MediaError(kind, path, f"cannot read file ({exc.strerror or exc})") from None


def check_file(path: Path, kind: str) -> int:
    """The size of a readable, non-empty regular file; a MediaError naming the file otherwise."""
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
                raise MediaError(
                    kind, url, f"{human_size(int(declared))}, over the {human_size(max_bytes)} limit (max_bytes)"
                )
            received = 0
            for chunk in response.iter_bytes():  # decoded bytes, so gzip bombs count at their real size
                received += len(chunk)
                if received > max_bytes:
                    raise MediaError(kind, url, f"download exceeds the {human_size(max_bytes)} limit (max_bytes)")
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


def decode_data_url(url: str, max_bytes: int) -> bytes:
    """The bytes of a base64 `data:image/...` URL, refused before decoding when over `max_bytes`."""
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
        raise MediaError("image", url, f"data URL is over the {human_size(max_bytes)} limit (max_bytes)")
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


def human_size(n: int) -> str:
    """'3.2 MiB' or '812 bytes', for limit messages."""
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"
