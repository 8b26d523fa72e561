"""Image and video loading: every stage turns a media reference into pixels through this package.

Images come from a path, an http(s) URL, a `data:image/...;base64,` URL, bytes or a PIL image, and always come
back the same way: fully decoded (a truncated file fails here, not in a training step), RGB, EXIF orientation
applied, transparency composited on white. Limits are checked before any decoding: bytes (file size,
Content-Length, the streamed download) and pixels (the header size, read by PIL's lazy open), so a
decompression bomb never gets allocated. Videos are decoded with PyAV and sampled to `nframes` evenly spaced
frames or to `fps` frames per second with a cap.

Every failure is a `MediaError(kind, source, reason)`; no PIL, av or httpx exception escapes.

`sources` reads bytes (files, URLs, data URLs) under size limits, `images` decodes and stores images, `video`
samples frames.
"""

from .images import (
    KEEP_AS_IS_FORMATS,
    ImageSource,
    decode_image_bytes,
    encode_image,
    image_size,
    image_suffix,
    load_image,
    read_image_source,
    storable_image,
)
from .sources import DEFAULT_MAX_BYTES, DEFAULT_PIXEL_CAP, describe_bytes, fetch_url, read_media_file
from .video import DEFAULT_VIDEO_FPS, Video, VideoPlan, load_video, plan_video, probe_video, video_processor_kwargs

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_PIXEL_CAP",
    "DEFAULT_VIDEO_FPS",
    "KEEP_AS_IS_FORMATS",
    "ImageSource",
    "Video",
    "VideoPlan",
    "decode_image_bytes",
    "describe_bytes",
    "encode_image",
    "fetch_url",
    "image_size",
    "image_suffix",
    "load_image",
    "load_video",
    "plan_video",
    "probe_video",
    "read_image_source",
    "read_media_file",
    "storable_image",
    "video_processor_kwargs",
]
