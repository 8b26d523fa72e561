"""Media loading: every way in gives a clean RGB image or sampled frames; every bad input a clear MediaError."""

from __future__ import annotations

import base64
import http.server
import io
import os
import socket
import struct
import threading
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
import synthetic_media as synthetic
from PIL import Image

from vlmkit.data.media import (
    Video,
    decode_image_bytes,
    describe_bytes,
    encode_image,
    image_size,
    image_suffix,
    load_image,
    load_video,
    probe_video,
    storable_image,
    video_processor_kwargs,
)
from vlmkit.errors import ConfigError, MediaError

EXIF_ORIENTATION = 0x0112


# --- helpers -------------------------------------------------------------------------------------


def save(image: Image.Image, path: Path, format: str | None = None, **options) -> Path:
    image.save(path, format=format, **options)
    return path


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR that claim `width x height`, followed by almost no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def expect_media_error(kind: str, source: object, *words: str, **kwargs) -> MediaError:
    loader = load_image if kind == "image" else load_video
    with pytest.raises(MediaError) as info:
        loader(source, **kwargs)
    error = info.value
    assert error.kind == kind
    assert str(source)[:60] in str(error)  # the message names the file
    for word in words:
        assert word in error.reason, error.reason
    return error


# --- images: sources -----------------------------------------------------------------------------


def test_every_source_kind_gives_the_same_rgb_image(tmp_path):
    original = synthetic.make_image(40, 30, seed=1)
    path = save(original, tmp_path / "a.png")
    data = path.read_bytes()
    sources = [
        str(path),
        path,
        f"file://{path}",
        data,
        bytearray(data),
        "data:image/png;base64," + base64.b64encode(data).decode(),
        Image.open(path),  # lazily opened PIL image
        original,
    ]
    for source in sources:
        image = load_image(source)
        assert image.mode == "RGB" and image.size == (40, 30)
        assert np.array_equal(np.asarray(image), np.asarray(original)), type(source)


def test_relative_path_resolves_against_base_dir(tmp_path):
    save(synthetic.make_image(8, 6), tmp_path / "img.png")
    assert load_image("img.png", base_dir=tmp_path).size == (8, 6)
    expect_media_error("image", "img.png", "file not found")  # not found from the cwd


def test_a_callers_pil_image_is_not_modified(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    out = load_image(rgba)
    assert rgba.mode == "RGBA" and out is not rgba
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    upright = synthetic.make_image(40, 20, seed=2)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # stored rotated: display needs a 90° clockwise turn
    path = save(upright, tmp_path / "rotated.png", exif=exif)
    image = load_image(path)
    assert image.size == (20, 40)
    assert np.array_equal(np.asarray(image), np.asarray(upright.transpose(Image.Transpose.ROTATE_270)))


@pytest.mark.parametrize(
    "make, format, expected_corner",
    [
        (lambda: Image.new("RGBA", (6, 6), (255, 0, 0, 0)), "PNG", (255, 255, 255)),  # transparent -> white
        (lambda: Image.new("RGBA", (6, 6), (255, 0, 0, 255)), "PNG", (255, 0, 0)),
        (lambda: Image.new("LA", (6, 6), (0, 0)), "PNG", (255, 255, 255)),
        (lambda: _palette_with_transparency(), "PNG", (255, 255, 255)),
        (lambda: Image.new("P", (6, 6), 0), "GIF", (0, 0, 0)),
        (lambda: Image.new("L", (6, 6), 77), "PNG", (77, 77, 77)),
        (lambda: Image.new("1", (6, 6), 1), "PNG", (255, 255, 255)),
        (lambda: Image.new("CMYK", (6, 6), (0, 255, 255, 0)), "TIFF", (255, 0, 0)),
        (lambda: Image.new("CMYK", (6, 6), (0, 0, 0, 0)), "JPEG", (255, 255, 255)),
        (lambda: Image.fromarray(np.full((6, 6), 32896, np.uint16)), "PNG", (128, 128, 128)),  # 16-bit: scaled
    ],
    ids=["rgba-clear", "rgba-opaque", "la", "p-transparency", "p-gif", "l", "1", "cmyk-tiff", "cmyk-jpeg", "i16"],
)
def test_modes_become_rgb(tmp_path, make, format, expected_corner):
    path = save(make(), tmp_path / f"img{image_suffix(format)}", format)
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == pytest.approx(expected_corner, abs=2)


def _palette_with_transparency() -> Image.Image:
    image = Image.new("P", (6, 6), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    return image


# --- images: bad inputs --------------------------------------------------------------------------


@pytest.fixture
def jpeg_file(tmp_path):
    return tmp_path / "photo.jpg", jpeg_bytes(Image.effect_noise((128, 96), 60).convert("RGB"))


def test_truncated_jpeg_fails_at_load_not_later(tmp_path, jpeg_file):
    path, data = jpeg_file
    path.write_bytes(data[: len(data) // 2])
    assert Image.open(path).size == (128, 96)  # the header alone looks fine
    expect_media_error("image", path, "truncated")


def test_corrupt_image_data(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 40)
    expect_media_error("image", path, "corrupt or truncated")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    expect_media_error("image", path, "empty file (0 bytes)")


def test_missing_file(tmp_path):
    expect_media_error("image", tmp_path / "nope.png", "file not found")


def test_directory_is_not_an_image(tmp_path):
    expect_media_error("image", tmp_path, "directory")


@pytest.mark.parametrize(
    "content, guess",
    [
        (b"question,answer\nwhat colour?,red\n", "plain text"),
        (b"<html><body>404</body></html>", "HTML"),
        (b'{"image": "x.png"}', "JSON"),
        (b"%PDF-1.7\n%\xe2\xe3", "PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
        (bytes(range(256)) * 4, "unrecognised bytes"),
    ],
    ids=["text", "html", "json", "pdf", "heic", "binary"],
)
def test_non_image_file_says_what_it_looks_like(tmp_path, content, guess):
    path = tmp_path / "not-really.jpg"
    path.write_bytes(content)
    expect_media_error("image", path, "not an image", guess)


def test_oversized_image_is_refused_from_its_header(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming_size(9000, 9000))  # 81 Mpx: over our default cap, under PIL's own limit
    expect_media_error("image", path, "9000x9000", "max_pixels_cap")  # not "truncated": nothing was decoded
    small = save(synthetic.make_image(100, 100), tmp_path / "small.png")
    expect_media_error("image", small, "100x100", max_pixels_cap=5_000)


def test_decompression_bomb_is_a_media_error_even_with_a_raised_cap(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(20000, 20000))  # beyond twice PIL's limit: PIL refuses on open
    expect_media_error("image", path, "too many pixels", max_pixels_cap=10**9)


def test_a_raised_cap_wins_over_pils_warning(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(png_claiming_size(10000, 10000))  # above PIL's warning threshold, below its error
    # Passes the size checks (the caller allowed 1e9 pixels), then fails honestly on the missing data.
    expect_media_error("image", path, "corrupt or truncated", max_pixels_cap=10**9)


def test_too_many_bytes(tmp_path, jpeg_file):
    path, data = jpeg_file
    path.write_bytes(data)
    expect_media_error("image", path, "max_bytes", max_bytes=len(data) - 1)
    with pytest.raises(MediaError, match="max_bytes"):
        decode_image_bytes(data, "cell 3", max_bytes=100)


@pytest.mark.parametrize(
    "url, words",
    [
        ("data:image/png,abc", ["only base64"]),
        ("data:text/plain;base64,aGVsbG8=", ["text/plain", "not an image"]),
        ("data:image/png;base64,@@not-base64@@", ["invalid base64"]),
        ("data:image/png;base64", ["malformed"]),
        ("data:image/png;base64," + base64.b64encode(b"hello there").decode(), ["not an image", "plain text"]),
    ],
)
def test_bad_data_urls(url, words):
    expect_media_error("image", url, *words)


def test_unsupported_url_scheme_is_not_taken_for_a_path():
    expect_media_error("image", "s3://bucket/cat.png", "unsupported URL scheme")


def test_float_pixels_are_scaled_not_blackened():
    assert load_image(Image.fromarray(np.full((3, 3), 0.5, np.float32))).getpixel((0, 0)) == (128, 128, 128)


def test_unsupported_source_type():
    with pytest.raises(MediaError, match="unsupported source type"):
        load_image(12345)


def test_decode_errors_name_the_given_source():
    with pytest.raises(MediaError) as info:
        decode_image_bytes(b"\xff\xd8\xff\xe0 not really", "train-00000.parquet row 17")
    assert "train-00000.parquet row 17" in str(info.value)


def test_no_file_handles_leak(tmp_path, jpeg_file):
    path, data = jpeg_file
    path.write_bytes(data)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(data[:300])
    video = synthetic.write_video(tmp_path / "v.mp4", n_frames=6)
    text = tmp_path / "t.mp4"
    text.write_text("not a video")
    load_image(path), load_video(video, nframes=2)  # warm up lazy imports before counting
    before = open_fds()
    for _ in range(5):
        load_image(path)
        load_image(Image.open(path))
        load_video(video, nframes=3)
        probe_video(video)
        for bad, loader in ((truncated, load_image), (text, load_video), (path, load_video)):
            with pytest.raises(MediaError):
                loader(bad)
    assert open_fds() == before


# --- images: URLs --------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    png = b""
    release = threading.Event()

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path == "/img.png":
            self._send(200, self.png, {"Content-Length": str(len(self.png)), "Content-Type": "image/png"})
        elif self.path == "/big-declared":
            self._send(200, b"x" * 10, {"Content-Length": str(10**9)})
        elif self.path == "/big-undeclared":  # no Content-Length: only the streamed count can stop it
            self.send_response(200)
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"\0" * 4096)
        elif self.path == "/slow":
            self.release.wait(10)
            self._send(200, self.png, {})
        else:
            self._send(404, b"no", {"Content-Length": "2"})

    def _send(self, status, body, headers):
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_base():
    _Handler.png = encode_image(synthetic.make_image(12, 10, seed=3))
    _Handler.protocol_version = "HTTP/1.0"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.block_on_close = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Handler.release.set()
    server.shutdown()
    server.server_close()


def test_url_image_loads(http_base):
    assert load_image(f"{http_base}/img.png").size == (12, 10)


@pytest.mark.parametrize(
    "path, words, kwargs",
    [
        ("/missing", ["HTTP 404"], {}),
        ("/big-declared", ["max_bytes"], {}),
        ("/big-undeclared", ["exceeds", "max_bytes"], {"max_bytes": 100_000}),
        ("/slow", ["timed out after 0.3s"], {"timeout": 0.3}),
    ],
)
def test_url_failures(http_base, path, words, kwargs):
    expect_media_error("image", f"{http_base}{path}", *words, **kwargs)


def test_unreachable_host_and_remote_switch(http_base):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    expect_media_error("image", f"http://127.0.0.1:{closed_port}/x.png", "cannot connect")
    expect_media_error("image", f"{http_base}/img.png", "allow_remote=False", allow_remote=False)


# --- storing and resizing ------------------------------------------------------------------------


def test_storable_image_keeps_good_bytes_and_normalises_the_rest(tmp_path):
    photo = jpeg_bytes(synthetic.make_image(30, 20))
    assert storable_image(photo) == (photo, ".jpg")

    bmp = save(synthetic.make_image(30, 20, seed=4), tmp_path / "a.bmp")
    data, suffix = storable_image(bmp)
    assert suffix == ".png" and Image.open(io.BytesIO(data)).format == "PNG"
    assert np.array_equal(np.asarray(load_image(data)), np.asarray(load_image(bmp)))  # lossless

    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    rotated = jpeg_bytes(synthetic.make_image(30, 20), exif=exif)
    data, suffix = storable_image(rotated)
    assert suffix == ".png" and Image.open(io.BytesIO(data)).size == (20, 30)  # stored upright

    assert storable_image(synthetic.make_image(5, 5))[1] == ".png"
    with pytest.raises(MediaError, match="truncated"):
        storable_image(photo[: len(photo) // 2])


def test_encode_image_round_trips_and_suffixes():
    image = synthetic.make_image(16, 12, seed=5)
    for format, suffix in (("PNG", ".png"), ("webp", ".webp"), ("jpg", ".jpg"), ("TIFF", ".tif")):
        decoded = Image.open(io.BytesIO(encode_image(image, format)))
        assert decoded.size == (16, 12) and image_suffix(format) == suffix
        if format != "jpg":  # lossless formats give the pixels back exactly
            assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(image))
    with pytest.raises(ValueError):
        image_suffix("NOT-A-FORMAT")


def test_image_size_reads_the_header_and_applies_exif_rotation(tmp_path):
    upright = synthetic.make_image(40, 20)
    plain = tmp_path / "plain.png"
    upright.save(plain)
    assert image_size(plain) == (40, 20) == load_image(plain).size
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated by 90 degrees
    upright.save(rotated, exif=exif)
    assert image_size(rotated) == (20, 40) == load_image(rotated).size


# --- videos --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """30 frames at 10 fps (3 s)."""
    return synthetic.write_video(tmp_path_factory.mktemp("video") / "clip.mp4", n_frames=30, fps=10.0)


def markers(video: Video) -> list[int]:
    return [synthetic.frame_index(frame) for frame in video.frames]


def test_nframes_are_evenly_spaced_over_the_whole_video(clip):
    video = load_video(clip, nframes=5)
    assert video.frames.dtype == np.uint8 and video.frames.shape == (5, 48, 64, 3)
    assert video.frame_indices == [0, 7, 14, 22, 29]
    assert markers(video) == video.frame_indices  # the decoded frames really are those frames
    assert (video.fps, video.duration_s, video.total_frames, video.source) == (10.0, 3.0, 30, str(clip))
    assert video.sampled_fps == pytest.approx(5 / 3)


def test_nframes_beyond_the_video_clamps_and_records_the_real_count(clip):
    video = load_video(clip, nframes=100)
    assert video.frame_indices == list(range(30)) and video.total_frames == 30
    assert markers(video) == list(range(30))


def test_fps_sampling_and_its_frame_cap(tmp_path):
    long = synthetic.write_video(tmp_path / "long.mp4", n_frames=160, fps=4.0)  # 40 s
    one_per_second = load_video(long, fps=1.0)
    assert len(one_per_second.frame_indices) == 40
    capped = load_video(long, fps=2.0, max_frames=64)  # 80 wanted
    assert len(capped.frame_indices) == 64
    assert capped.frame_indices[0] == 0 and capped.frame_indices[-1] == 159
    assert np.diff(capped.frame_indices).min() >= 2 and np.diff(capped.frame_indices).max() <= 3
    assert markers(capped) == capped.frame_indices
    assert capped.sampled_fps == pytest.approx(64 / 40)
    short = load_video(long, fps=0.01, min_frames=4)  # 0.4 frames wanted, at least 4 given
    assert short.frame_indices == [0, 53, 106, 159]


def test_default_sampling_is_two_fps(clip):
    assert len(load_video(clip).frame_indices) == 6  # 3 s x 2 fps


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_containers_without_a_frame_count_are_counted(tmp_path, suffix):
    path = synthetic.write_video(tmp_path / f"v{suffix}", n_frames=12, fps=6.0)
    assert av.open(str(path)).streams.video[0].frames == 0  # the header does not say
    assert probe_video(path)["frames"] == 12
    video = load_video(path, nframes=4)
    assert video.frame_indices == [0, 4, 7, 11] and markers(video) == [0, 4, 7, 11]


def test_a_header_that_overstates_the_frame_count_is_resampled(tmp_path):
    path = synthetic.write_video(tmp_path / "v.avi", n_frames=30, fps=10.0)
    with av.open(str(path)) as container:
        offsets = [packet.pos for packet in container.demux(container.streams.video[0]) if packet.size]
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: offsets[12]])  # 12 whole frames left, header still says 30
    assert probe_video(cut)["frames"] == 30
    video = load_video(cut, nframes=4)
    assert video.total_frames == 12 and video.frame_indices == [0, 4, 7, 11]
    assert markers(video) == [0, 4, 7, 11]


def test_a_decode_error_part_way_keeps_the_frames_before_it(tmp_path, caplog):
    path = synthetic.write_video(tmp_path / "v.avi", n_frames=30, fps=10.0)
    with av.open(str(path)) as container:
        packets = [(packet.pos, packet.size) for packet in container.demux(container.streams.video[0]) if packet.size]
    data = bytearray(path.read_bytes())
    start, size = packets[15]
    data[start : start + size] = b"\xab" * size  # frame 15 is garbage; the container around it is intact
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    video = load_video(damaged, nframes=30)
    assert video.total_frames == 15 and markers(video) == list(range(15))
    assert "decoding stopped after 15 frames" in caplog.text


def test_display_rotation_is_applied(tmp_path):
    path = synthetic.write_video(tmp_path / "phone.mp4", n_frames=4, rotation=90)
    video = load_video(path, nframes=2)
    assert video.frames.shape == (2, 64, 48, 3)  # coded 64 wide x 48 high, shown turned a quarter
    assert [synthetic.frame_index(np.rot90(frame, -1)) for frame in video.frames] == [0, 3]


def test_probe_video_reads_headers(clip):
    assert probe_video(clip) == {
        "frames": 30,
        "fps": 10.0,
        "duration": 3.0,
        "width": 64,
        "height": 48,
        "codec": probe_video(clip)["codec"],
    }


def test_frame_limits(clip):
    expect_media_error("video", clip, "64x48", max_pixels_cap=1000)
    small = load_video(clip, nframes=3, max_frame_pixels=32 * 24)
    assert small.frames.shape == (3, 24, 32, 3) and markers(small) == [0, 14, 29]


def test_video_with_no_frames(tmp_path):
    path = synthetic.write_empty_video(tmp_path / "empty.avi")
    assert probe_video(path)["frames"] == 0
    expect_media_error("video", path, "video has no frames")


def test_mp4_without_a_video_track(tmp_path):
    path = tmp_path / "no-track.mp4"
    with av.open(str(path), "w") as container:  # MP4 drops a track that never got a sample
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    expect_media_error("video", path, "no video stream")


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("missing.mp4", None, ["file not found"]),
        ("empty.mp4", b"", ["empty file (0 bytes)"]),
        ("notes.mp4", b"this is not a video\n" * 20, ["not a readable video", "plain text"]),
        ("random.mp4", bytes(range(256)) * 20, ["not a readable video"]),
        ("frame.mp4", "png", ["still image", "png"]),
    ],
)
def test_bad_video_files(tmp_path, name, content, words):
    path = tmp_path / name
    if content == "png":
        save(synthetic.make_image(), path, "PNG")
    elif content is not None:
        path.write_bytes(content)
    expect_media_error("video", path, *words)


def test_truncated_mp4_is_a_media_error(tmp_path, clip):
    path = tmp_path / "cut.mp4"
    path.write_bytes(clip.read_bytes()[:2000])  # index (moov) is at the end and gets cut off
    expect_media_error("video", path, "not a readable video")


def test_sampling_arguments_are_checked(clip):
    for kwargs in ({"nframes": 4, "fps": 1.0}, {"nframes": 0}, {"fps": -1.0}, {"min_frames": 10, "max_frames": 5}):
        with pytest.raises(ConfigError):
            load_video(clip, **kwargs)


# --- videos into transformers processors ---------------------------------------------------------


def test_to_processor_input_feeds_qwen_video_processors(clip):
    from transformers import Qwen2VLVideoProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    five, single = load_video(clip, nframes=5), load_video(clip, nframes=1)
    frames, meta = five.to_processor_input()
    assert frames.shape == (5, 48, 64, 3)
    assert meta["total_num_frames"] == 30 and meta["fps"] == 10.0 and meta["frames_indices"] == [0, 7, 14, 22, 29]
    padded, padded_meta = single.to_processor_input()  # one frame: repeated to fill a temporal patch
    assert len(padded) == 2 and padded_meta["frames_indices"] == [0, 0]
    assert len(single.to_processor_input(min_frames=1)[0]) == 1

    for processor_class in (Qwen2VLVideoProcessor, Qwen3VLVideoProcessor):
        processor = processor_class(cap_pixels_per_frame=False)
        out = processor(**video_processor_kwargs([five, single]), return_metadata=True, return_tensors="pt")
        assert out["video_grid_thw"][:, 0].tolist() == [3, 1]  # ceil(frames / temporal patch 2)
        assert out["video_metadata"][0].frames_indices == [0, 7, 14, 22, 29]  # not sampled again
        assert out["video_metadata"][0].sampled_fps == pytest.approx(five.sampled_fps)


# --- synthetic media -----------------------------------------------------------------------------


def test_synthetic_media_is_deterministic(tmp_path):
    def pixels(seed):
        return np.asarray(synthetic.make_image(20, 10, seed=seed))

    assert np.array_equal(pixels(7), pixels(7)) and not np.array_equal(pixels(7), pixels(8))
    for index in (0, 1, 517, 1023):
        assert synthetic.frame_index(synthetic.video_frame(index, 1024)) == index
    with pytest.raises(ValueError):
        synthetic.video_frame(1024, 2000)
    with pytest.raises(ValueError):
        synthetic.write_video(tmp_path / "odd.mp4", size=(63, 48))


def test_describe_bytes_names_videos():
    assert "MP4" in describe_bytes(b"\x00\x00\x00\x20ftypisom")
    assert "Matroska" in describe_bytes(b"\x1aE\xdf\xa3rest")


def test_describe_bytes_reads_long_non_ascii_text():
    vietnamese = ("Câu hỏi: màu gì? Trả lời: đỏ. " * 40).encode()  # multi-byte characters across byte 512
    assert describe_bytes(vietnamese) == "looks like plain text"
