"""Media references in API requests -> checked bytes, refusing anything that could reach the server's own files
or network.

Accepted: `data:` URLs (base64), and http(s) URLs only when remote media are allowed. Refused: `file://`, local
paths and every other scheme. A remote fetch resolves the host first and refuses it unless *every* address is
public (no loopback, private, link-local, multicast, reserved or unspecified targets, including IPv4 embedded in
IPv6), then connects to the address it checked (so a second DNS answer cannot swap in 127.0.0.1), keeps the
original Host header and TLS name, re-checks every redirect hop, ignores proxy variables, and enforces a total
time limit and a size cap while streaming. Images are checked for bytes, header pixels and a full decode before
the request is queued, so a bad image never reaches the engine.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from PIL import Image

from ..data import media
from ..errors import MediaError
from .errors import ApiError

MiB = 2**20
REDIRECT_CODES = (301, 302, 303, 307, 308)
VIDEO_SUFFIXES = {
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "video/x-matroska": ".mkv",
    "video/x-msvideo": ".avi",
    "video/mpeg": ".mpg",
    "video/ogg": ".ogv",
}

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class MediaPolicy:
    """What a request may send: sizes, pixels, frames, and whether (and where) the server may fetch URLs."""

    max_image_bytes: int = 10 * MiB
    max_image_pixels: int = 4096 * 4096
    max_video_bytes: int = 32 * MiB
    max_video_frames: int = 3600  # frames in the source file (decoding walks up to the last sampled one)
    max_media_per_request: int = 16
    allow_remote: bool = False
    fetch_timeout_s: float = 10.0
    max_redirects: int = 3
    # Networks an operator vouches for (e.g. an internal image store); empty by default.
    trusted_networks: tuple[IpNetwork, ...] = field(default_factory=tuple)


# --- entry points ------------------------------------------------------------------------------


def read_image(url: str, policy: MediaPolicy) -> tuple[bytes, str]:
    """Bytes and file suffix of a fully checked image from a data URL or (if allowed) an http(s) URL."""
    data = read_url(url, "image", policy.max_image_bytes, policy)
    return data, check_image_bytes(data, url, policy)


def read_video(url: str, policy: MediaPolicy) -> tuple[bytes, str]:
    """Bytes and file suffix of a video; the caller writes them to a file and calls `check_video_file`."""
    data = read_url(url, "video", policy.max_video_bytes, policy)
    mime = _data_url_mime(url) if url[:5].lower() == "data:" else ""
    return data, VIDEO_SUFFIXES.get(mime, ".mp4")  # PyAV probes the content; the suffix is cosmetic


def read_url(url: str, kind: str, max_bytes: int, policy: MediaPolicy) -> bytes:
    if not isinstance(url, str) or not url.strip():
        raise ApiError(f"{kind} URL is empty", code="invalid_media_url")
    url = url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in ("", "file") or len(scheme) == 1 or url.startswith(("/", "~", ".", "\\")):  # C:\ is a drive
        raise ApiError(
            f"{kind} '{_short(url)}': local files are never read from requests; send a base64 data URL",
            code="local_media_refused",
        )
    if scheme == "data":
        return decode_data_url(url, kind, max_bytes)
    if scheme in ("http", "https"):
        if not policy.allow_remote:
            raise ApiError(
                f"remote {kind} URLs are disabled on this server (start it with --allow-remote-media); "
                f"send the {kind} inline as a base64 data URL",
                code="remote_media_disabled",
            )
        return fetch_public_url(url, kind, max_bytes, policy)
    raise ApiError(f"{kind} '{_short(url)}': unsupported URL scheme '{scheme}'", code="invalid_media_url")


# --- data URLs -----------------------------------------------------------------------------------


def decode_data_url(url: str, kind: str, max_bytes: int) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma:
        raise ApiError(f"{kind} data URL is malformed (no ',' before the data)", code="invalid_media_url")
    mime = _data_url_mime(url)
    if "base64" not in (p.strip().lower() for p in header.split(";")[1:]):
        raise ApiError(f"{kind} data URL must be base64 (data:{kind}/...;base64,...)", code="invalid_media_url")
    if mime and not mime.startswith(f"{kind}/"):
        raise ApiError(f"{kind} data URL holds '{mime}', not an {kind}", code="invalid_media")
    payload = "".join(payload.split())
    if len(payload) // 4 * 3 > max_bytes + 2:
        raise ApiError(
            f"{kind} is about {_size(len(payload) // 4 * 3)}, over this server's {_size(max_bytes)} limit",
            status=413,
            code=f"{kind}_too_large",
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(f"{kind} data URL has invalid base64 ({exc})", code="invalid_media") from None
    if not data:
        raise ApiError(f"{kind} data URL is empty", code="invalid_media")
    if len(data) > max_bytes:
        raise ApiError(
            f"{kind} is {_size(len(data))}, over this server's {_size(max_bytes)} limit",
            status=413,
            code=f"{kind}_too_large",
        )
    return data


def _data_url_mime(url: str) -> str:
    return url.partition(",")[0][len("data:") :].split(";")[0].strip().lower()


# --- content checks ------------------------------------------------------------------------------


def check_image_bytes(data: bytes, source: str, policy: MediaPolicy) -> str:
    """Pixel cap from the header (413), then a full decode (400 if broken); returns the file suffix."""
    name = _label(source)
    try:
        header = Image.open(io.BytesIO(data))
        width, height = header.size
        fmt = header.format or "PNG"
    except Image.DecompressionBombError:
        raise ApiError(f"image {name}: far too many pixels", status=413, code="image_too_large") from None
    except Exception:
        raise ApiError(f"image {name}: not an image ({media.describe_bytes(data)})", code="invalid_image") from None
    if width * height > policy.max_image_pixels:
        raise ApiError(
            f"image {name}: {width}x{height} = {width * height:,} pixels, over this server's limit of "
            f"{policy.max_image_pixels:,}",
            status=413,
            code="image_too_large",
        )
    try:
        media.decode_image_bytes(data, name, max_pixels_cap=policy.max_image_pixels, max_bytes=policy.max_image_bytes)
    except MediaError as exc:
        raise ApiError(str(exc), code="invalid_image") from None
    try:
        return media.image_suffix(fmt)
    except ValueError:
        return ".png"


def check_video_file(path: Path, source: str, policy: MediaPolicy) -> None:
    """Open the container and check frame count and frame size before the engine decodes it."""
    try:
        info = media.probe_video(path)
    except MediaError as exc:
        raise ApiError(f"video {_label(source)}: {exc.reason}", code="invalid_video") from None
    if info["frames"] < 1:
        raise ApiError(f"video {_label(source)}: has no frames", code="invalid_video")
    if info["frames"] > policy.max_video_frames:
        raise ApiError(
            f"video has {info['frames']:,} frames, over this server's limit of {policy.max_video_frames:,}",
            status=413,
            code="video_too_large",
        )
    if (info["width"] or 0) * (info["height"] or 0) > policy.max_image_pixels:
        raise ApiError(
            f"video frames are {info['width']}x{info['height']}, over this server's limit of "
            f"{policy.max_image_pixels:,} pixels",
            status=413,
            code="video_too_large",
        )


# --- remote fetching -----------------------------------------------------------------------------


def is_public_address(ip: IpAddress) -> bool:
    """Globally routable unicast, also for every IPv4 address embedded in an IPv6 one."""
    if ip.is_multicast or not ip.is_global:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64 carries the IPv4 target in the low 32 bits
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return all(is_public_address(v4) for v4 in embedded if v4 is not None)
    return True


def resolve_allowed(host: str, port: int, policy: MediaPolicy) -> list[str]:
    """Every address `host` resolves to, if all are public or in a trusted network; else ApiError (no connection)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise ApiError(f"cannot resolve host '{host}' ({exc})", code="media_fetch_failed") from None
    addresses = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0].split("%")[0])  # drop an IPv6 zone id
        trusted = any(ip in net for net in policy.trusted_networks)
        if not trusted and not is_public_address(ip):
            raise ApiError(
                f"host '{host}' resolves to {ip}, a non-public address; the server only fetches from public addresses",
                code="media_url_refused",
            )
        addresses.append(str(ip))
    if not addresses:
        raise ApiError(f"host '{host}' has no address", code="media_fetch_failed")
    return addresses


def fetch_public_url(url: str, kind: str, max_bytes: int, policy: MediaPolicy) -> bytes:
    import httpx

    deadline = time.monotonic() + policy.fetch_timeout_s
    for _hop in range(policy.max_redirects + 1):
        target = _checked_target(url, policy)
        remaining = max(0.01, deadline - time.monotonic())
        try:
            with httpx.Client(trust_env=False, follow_redirects=False, timeout=remaining) as client:
                request = client.build_request(
                    "GET",
                    target,
                    headers={"Host": httpx.URL(url).netloc.decode("ascii")},
                    extensions={"sni_hostname": httpx.URL(url).host},
                )
                response = client.send(request, stream=True)
                try:
                    if response.status_code in REDIRECT_CODES and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise ApiError(
                            f"fetching {kind} {_short(url)} failed: HTTP {response.status_code}",
                            code="media_fetch_failed",
                        )
                    return _read_capped(response, url, kind, max_bytes, deadline)
                finally:
                    response.close()
        except ApiError:
            raise
        except httpx.TimeoutException:
            raise ApiError(
                f"fetching {kind} {_short(url)} timed out after {policy.fetch_timeout_s:g}s", code="media_fetch_failed"
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(
                f"fetching {kind} {_short(url)} failed ({type(exc).__name__}: {exc})", code="media_fetch_failed"
            ) from None
    raise ApiError(f"fetching {kind}: more than {policy.max_redirects} redirects", code="media_fetch_failed")


def _checked_target(url: str, policy: MediaPolicy):
    """The URL rewritten to connect to one checked address of its host."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ApiError(f"invalid URL '{_short(url)}' ({exc})", code="invalid_media_url") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ApiError(f"'{_short(url)}': only http(s) URLs with a host can be fetched", code="media_url_refused")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    address = resolve_allowed(parsed.host, port, policy)[0]
    return parsed.copy_with(host=address)


def _read_capped(response, url: str, kind: str, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(
            f"{kind} at {_short(url)} is {_size(int(declared))}, over this server's {_size(max_bytes)} limit",
            status=413,
            code=f"{kind}_too_large",
        )
    chunks, received = [], 0
    for chunk in response.iter_bytes():  # decoded bytes, so compressed bombs count at their real size
        received += len(chunk)
        if received > max_bytes:
            raise ApiError(
                f"{kind} at {_short(url)} exceeds this server's {_size(max_bytes)} limit",
                status=413,
                code=f"{kind}_too_large",
            )
        if time.monotonic() > deadline:
            raise ApiError(f"fetching {kind} {_short(url)} took too long", code="media_fetch_failed")
        chunks.append(chunk)
    if not received:
        raise ApiError(f"{kind} at {_short(url)} is empty", code="invalid_media")
    return b"".join(chunks)


def _label(source: str) -> str:
    return "(data URL)" if source[:5].lower() == "data:" else _short(source, 80)


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n:,} bytes"


def _short(text: str, limit: int = 100) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "…"
