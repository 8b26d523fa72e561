"""Turn whatever a source gives for an image or video into a content-addressed file in DIR/media/.

Images follow `media.storable_image`: upright JPEG/PNG/WebP bytes are kept as they are (after a full
decode proves they are readable), so nothing is re-compressed and JPEGs stay small; an EXIF-rotated
photo or another format (BMP, TIFF, GIF) is stored as a lossless PNG of the upright RGB pixels, so every
loader (not only ours) shows it the right way up.

Each distinct image is decoded once: a bounded cache maps the source bytes' sha256 to the stored file,
so a document image that 20 DocVQA questions share costs one decode and one copy.

Videos are copied byte for byte (never re-encoded) after `probe_video` shows they can be opened.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ...errors import MediaError
from ..schema import DatasetWriter
from .record_error import RecordError

# Enough to keep every image of a typical shard; bounded so memory stays flat on any dataset size.
# A miss only costs a second decode: the stored file is content-addressed, so it is not written twice.
CACHE_ENTRIES = 65_536


class MediaStore:
    def __init__(self, writer: DatasetWriter, *, allow_outside: bool = False):
        self.writer = writer
        self.allow_outside = allow_outside  # --allow-outside-paths
        self.outside_refused: dict[str, Any] = {"count": 0, "examples": []}
        self._by_source_digest: OrderedDict[str, str] = OrderedDict()
        self.image_refs = 0
        self.images_decoded = 0
        self.video_refs = 0
        self.images_stored = 0  # new files written (a file already in media/ is a duplicate)
        self.videos_stored = 0

    # --- images --------------------------------------------------------------------------------
    def image(self, value: Any, *, name: str, search_dirs: list[Path], field: str = "image") -> str:
        """Store an image given as a datasets Image struct, raw bytes, a PIL image or a file path."""
        if isinstance(value, dict):
            data, path = value.get("bytes"), value.get("path")
            if data:
                return self.image_bytes(bytes(data), name=path or name, field=field)
            if path:
                return self.image_file(path, search_dirs=search_dirs, field=field)
            raise RecordError("image struct has neither bytes nor path", field=field)
        if isinstance(value, (bytes, bytearray, memoryview)):
            if not value:
                raise RecordError("image bytes are empty", field=field)
            return self.image_bytes(bytes(value), name=name, field=field)
        if isinstance(value, str):
            if not value.strip():
                raise RecordError("image path is empty", field=field)
            return self.image_file(value, search_dirs=search_dirs, field=field)
        if hasattr(value, "save") and hasattr(value, "size"):  # an already decoded PIL image
            from ..media import encode_image

            try:
                return self.image_bytes(encode_image(value, format="PNG"), name=name, field=field)
            except (OSError, ValueError) as exc:
                raise RecordError(f"image {short(name)} can't be encoded: {exc}", field=field) from None
        raise RecordError(f"can't read an image from a {type(value).__name__}", field=field)

    def image_file(self, path: str, *, search_dirs: list[Path], field: str = "image") -> str:
        found = find_file(path, search_dirs)
        if found is None:
            where = ", ".join(str(d) for d in search_dirs) or "the current folder"
            raise RecordError(f"image file not found: {path} (looked in {where})", field=field)
        self._check_inside(path, found, search_dirs, field)
        try:
            data = found.read_bytes()
        except OSError as exc:
            raise RecordError(f"can't read image file {found}: {exc.strerror or exc}", field=field) from None
        return self.image_bytes(data, name=str(found), field=field)

    def _check_inside(self, given: str, found: Path, search_dirs: list[Path], field: str) -> None:
        """Media must lie under the source folder or --media-root (resolved: no absolute or ../ escapes, no
        symlinks out), unless --allow-outside-paths: a record must not pull any file on the machine into media/."""
        if self.allow_outside:
            return
        real = found.resolve()
        if any(real.is_relative_to(d.resolve()) for d in search_dirs if d.is_dir()):
            return
        self.outside_refused["count"] += 1
        if len(self.outside_refused["examples"]) < 10:
            self.outside_refused["examples"].append(given)
        raise RecordError(
            f"media path {short(given)} is outside the source folder and --media-root "
            "(pass --media-root DIR, or --allow-outside-paths to allow any path)",
            field=field,
        )

    def image_bytes(self, data: bytes, *, name: str, field: str = "image") -> str:
        digest = hashlib.sha256(data).hexdigest()
        stored = self._by_source_digest.get(digest)
        if stored is not None:
            self._by_source_digest.move_to_end(digest)
            self.writer.media_duplicates += 1
            self.image_refs += 1
            return stored
        payload, suffix = self._checked_image(data, name, field)
        before = self.writer.media_stored
        stored = self.writer.add_media_bytes(payload, suffix)
        self.images_stored += self.writer.media_stored - before
        self.image_refs += 1
        self._remember(digest, stored)
        return stored

    def _checked_image(self, data: bytes, name: str, field: str) -> tuple[bytes, str]:
        """Decode fully (the proof the file is usable); what to store and its suffix (media.storable_image)."""
        from ..media import storable_image

        try:
            stored = storable_image(data)
        except MediaError as exc:
            raise RecordError(f"image {short(name)} can't be decoded: {exc.reason}", field=field) from None
        self.images_decoded += 1
        return stored

    def _remember(self, digest: str, stored: str) -> None:
        self._by_source_digest[digest] = stored
        if len(self._by_source_digest) > CACHE_ENTRIES:
            self._by_source_digest.popitem(last=False)

    # --- videos --------------------------------------------------------------------------------
    def video(self, value: Any, *, name: str, search_dirs: list[Path], field: str = "video") -> str:
        stored = self._video(value, name=name, search_dirs=search_dirs, field=field)
        self.video_refs += 1
        return stored

    def _video(self, value: Any, *, name: str, search_dirs: list[Path], field: str) -> str:
        if isinstance(value, dict):  # datasets Video struct
            if value.get("bytes"):
                suffix = Path(value.get("path") or name).suffix or ".mp4"
                return self._video_bytes(bytes(value["bytes"]), suffix, name, field)
            value = value.get("path")
        if not isinstance(value, str) or not value.strip():
            raise RecordError(f"video must be a file path, got {type(value).__name__}", field=field)
        if "://" in value:
            raise RecordError(f"video {value} is a URL; download the videos and pass --media-root", field=field)
        found = find_file(value, search_dirs)
        if found is None:
            where = ", ".join(str(d) for d in search_dirs) or "the current folder"
            raise RecordError(f"video file not found: {value} (looked in {where})", field=field)
        self._check_inside(value, found, search_dirs, field)
        self._probe(found, field)
        before = self.writer.media_stored
        stored = self.writer.add_media_file(found)
        self.videos_stored += self.writer.media_stored - before
        return stored

    def _video_bytes(self, data: bytes, suffix: str, name: str, field: str) -> str:
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(data)
            tmp.flush()
            self._probe(Path(tmp.name), field, shown=name)
        before = self.writer.media_stored
        stored = self.writer.add_media_bytes(data, suffix)
        self.videos_stored += self.writer.media_stored - before
        return stored

    @staticmethod
    def _probe(path: Path, field: str, shown: str | None = None) -> None:
        from ..media import probe_video

        try:
            info = probe_video(path)
        except MediaError as exc:
            raise RecordError(f"video {short(shown or str(path))} can't be read: {exc.reason}", field=field) from None
        if not info.get("frames"):
            raise RecordError(f"video {short(shown or str(path))} has no frames", field=field)


def find_file(path: str, search_dirs: list[Path]) -> Path | None:
    """An absolute path as is; a relative one inside the first search dir that has it."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for folder in search_dirs:
        if (folder / candidate).is_file():
            return folder / candidate
    return candidate if candidate.is_file() else None


def short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]
