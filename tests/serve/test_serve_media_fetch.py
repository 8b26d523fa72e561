"""Media references in requests: data URLs, caps, refusal of local files, and the SSRF guard.

A local HTTP server on 127.0.0.1 counts the connections it receives, so the SSRF tests show that refused
URLs are refused *before* any connection is made; no test makes an outbound request.
"""

import base64
import io
import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image
from synthetic_media import make_image

from vlmkit.serve.errors import ApiError
from vlmkit.serve.media_fetch import MediaPolicy, is_public_address, read_image, read_url, resolve_allowed

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


def png_bytes(width=32, height=24) -> bytes:
    buffer = io.BytesIO()
    make_image(width, height).save(buffer, format="PNG")
    return buffer.getvalue()


def noise_png(side: int) -> bytes:
    """Incompressible pixels, so the byte size grows with the side."""
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, mime="image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


class _Handler(BaseHTTPRequestHandler):
    routes: dict = {}
    hits: list = []

    def do_GET(self):
        self.hits.append(self.path)
        status, headers, body = self.routes.get(self.path, (404, {}, b"missing"))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    """A tiny HTTP site on 127.0.0.1 for the whole module; yields (base_url, hits)."""
    handler = type("Handler", (_Handler,), {"routes": {}, "hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    handler.routes.update(
        {
            "/cat.png": (200, {"Content-Type": "image/png"}, png_bytes()),
            "/to-cat": (302, {"Location": "/cat.png"}, b""),
            "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
            "/page.html": (200, {"Content-Type": "text/html"}, b"<html>not an image</html>"),
            "/big.png": (200, {"Content-Type": "image/png"}, noise_png(64)),
        }
    )
    yield base, handler.hits
    server.shutdown()
    server.server_close()


@pytest.fixture
def local_site(site):
    """The site with its list of received requests emptied for this test."""
    site[1].clear()
    return site


def refused(url, policy, status=400, code=None):
    with pytest.raises(ApiError) as info:
        read_image(url, policy)
    assert info.value.status == status, info.value.message
    if code:
        assert info.value.code == code, info.value.message
    return info.value


# --- data URLs ---------------------------------------------------------------------------------


def test_data_url_image_is_decoded_checked_and_given_a_suffix():
    data, suffix = read_image(data_url(png_bytes()), MediaPolicy())
    assert data == png_bytes() and suffix == ".png"


def test_oversized_image_bytes_are_413():
    error = refused(data_url(noise_png(64)), MediaPolicy(max_image_bytes=5000), status=413)
    assert "limit" in error.message


def test_too_many_pixels_are_413_before_decoding():
    error = refused(data_url(png_bytes(300, 300)), MediaPolicy(max_image_pixels=200 * 200), status=413)
    assert "300x300" in error.message


@pytest.mark.parametrize(
    "payload, mime, words",
    [
        (b"%PDF-1.4 not an image", "image/png", "PDF"),
        (b"hello, world", "image/png", "not an image"),
        (png_bytes()[:60], "image/png", "corrupt"),
        (png_bytes(), "text/plain", "not an image"),
    ],
)
def test_non_image_bytes_are_refused_with_the_reason(payload, mime, words):
    assert words in refused(data_url(payload, mime), MediaPolicy()).message


def test_invalid_base64_and_non_base64_data_urls_are_refused():
    refused("data:image/png;base64,@@@not-base64@@@", MediaPolicy(), code="invalid_media")
    refused("data:image/png,rawbytes", MediaPolicy(), code="invalid_media_url")
    refused("data:image/png;base64", MediaPolicy(), code="invalid_media_url")


# --- local files and schemes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "/etc/passwd",
        "etc/passwd",
        "../secrets.png",
        "~/.ssh/id_rsa",
        "C:\\Windows\\win.ini",
        "  /etc/passwd",
    ],
)
def test_local_paths_are_never_read(url):
    assert refused(url, MediaPolicy(allow_remote=True), code="local_media_refused")


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "gopher://127.0.0.1:70/", "javascript:alert(1)"])
def test_other_schemes_are_refused(url):
    refused(url, MediaPolicy(allow_remote=True))


def test_remote_urls_are_off_by_default(local_site):
    base, hits = local_site
    error = refused(f"{base}/cat.png", MediaPolicy(), code="remote_media_disabled")
    assert "--allow-remote-media" in error.message and hits == []


# --- SSRF guard --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::",
    ],
)
def test_non_public_addresses_are_not_public(address):
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_public(address):
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "127.1",
        "2130706433",
        "0x7f000001",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "0.0.0.0",
    ],
)
def test_urls_to_the_server_itself_or_metadata_are_refused_before_connecting(local_site, host):
    base, hits = local_site
    port = base.rsplit(":", 1)[1]
    error = refused(f"http://{host}:{port}/cat.png", MediaPolicy(allow_remote=True), code="media_url_refused")
    assert "non-public" in error.message
    assert hits == []  # no connection reached the local site


def test_resolution_refuses_if_any_address_is_private():
    with pytest.raises(ApiError) as info:
        resolve_allowed("localhost", 80, MediaPolicy(allow_remote=True))
    assert info.value.code == "media_url_refused"


def test_unresolvable_host_is_a_clean_400():
    error = refused("http://no-such-host.invalid/cat.png", MediaPolicy(allow_remote=True))
    assert error.code == "media_fetch_failed"


# --- fetching from a trusted network (only 127.0.0.1 is reachable in tests) ----------------------


def test_fetch_from_a_trusted_network_works(local_site):
    base, hits = local_site
    data, suffix = read_image(f"{base}/cat.png", MediaPolicy(allow_remote=True, trusted_networks=LOOPBACK))
    assert data == png_bytes() and suffix == ".png" and hits == ["/cat.png"]


def test_redirects_are_followed_and_each_hop_is_checked(local_site):
    base, hits = local_site
    policy = MediaPolicy(allow_remote=True, trusted_networks=LOOPBACK)
    assert read_image(f"{base}/to-cat", policy)[0] == png_bytes()
    error = refused(f"{base}/to-metadata", policy, code="media_url_refused")
    assert "169.254.169.254" in error.message
    assert hits == ["/to-cat", "/cat.png", "/to-metadata"]


def test_fetched_size_cap_and_content_checks(local_site):
    base, _ = local_site
    policy = MediaPolicy(allow_remote=True, trusted_networks=LOOPBACK, max_image_bytes=2000)
    refused(f"{base}/big.png", policy, status=413)
    assert "not an image" in refused(f"{base}/page.html", policy).message
    assert "HTTP 404" in refused(f"{base}/missing.png", policy).message


def test_video_urls_use_the_same_guard():
    with pytest.raises(ApiError) as info:
        read_url("file:///tmp/x.mp4", "video", 10**6, MediaPolicy(allow_remote=True))
    assert info.value.code == "local_media_refused"
