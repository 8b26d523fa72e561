"""Train-time image augmentation (`data.augment`): bounded transforms from torchvision's transforms v2 functional API,
applied by the collator to decoded images and video frames before the processor sees them.

Determinism: every random choice for a medium is drawn from its own `torch.Generator`, seeded by a hash of
(train.seed, epoch, sample id, the medium's position in the sample); the global RNG is never read or advanced. An
item's epoch travels with it from the sampler (`EpochItem`, see train/data.py), so the pixels a sample gets are a
pure function of the config and the data: a resumed run, any number of DataLoader workers, and any batch
composition see exactly the images an uninterrupted run saw.

Size: every transform keeps the image's width and height (the crop is resized back to the original size; rotation
does not expand the canvas), so token counts read from file headers, length grouping and packing plans stay exact.

Video: one draw of parameters per video, applied to all its frames alike (a clip does not flicker between crops).

Order: geometric (crop, rotation, flips), then colour, then blur, then JPEG re-compression (the last thing a camera
pipeline or an upload would do). Which transforms are safe for a dataset is decided before training
(data/image_augment_safety.py); this module only applies them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Any

# A rotation larger than this is refused for text-reading tasks (image_augment_safety); the config bounds it at 30.
TEXT_SAFE_ROTATION_DEGREES = 10.0
JITTER = ("brightness", "contrast", "saturation", "hue")  # colour jitter, applied in an order drawn per medium


@dataclass(frozen=True)
class EpochItem:
    """A training item (a sample, or a packed row of samples) tagged with the epoch that drew it: the augmentation
    of its images depends on the epoch, so each epoch sees new variants and a resumed epoch the same ones."""

    item: Any
    epoch: int


def untag(items: Any) -> tuple[list[Any], int | None]:
    """(items, epoch) from a batch of possibly tagged items; epoch None for untagged ones (evaluation, tests)."""
    epochs = {i.epoch for i in items if isinstance(i, EpochItem)}
    if len(epochs) > 1:
        raise ValueError(f"one batch holds items of several epochs: {sorted(epochs)}")
    return [i.item if isinstance(i, EpochItem) else i for i in items], next(iter(epochs), None)


def is_active(settings: Any) -> bool:
    """Whether the `data.augment` section changes any pixel (a section with every transform off does nothing)."""
    if settings is None:
        return False
    s = settings
    drawn = (s.brightness, s.contrast, s.saturation, s.hue, s.crop_scale < 1, s.rotation, s.jpeg_quality, s.blur_sigma)
    return bool((any(drawn) and s.p > 0) or s.hflip or s.vflip)


def describe(settings: Any) -> str:
    """One line for `vlmkit train --check` and the log: what is applied, with its bounds."""
    if not is_active(settings):
        return "augment: off"
    s, parts = settings, []
    jitter = [f"{name} {value:g}" for name in JITTER if (value := getattr(s, name))]
    if jitter:
        parts.append(f"colour jitter ({', '.join(jitter)})")
    if s.crop_scale < 1:
        parts.append(f"crop keeping >= {s.crop_scale:.0%} of the area")
    if s.rotation:
        parts.append(f"rotation +-{s.rotation:g} deg")
    if s.blur_sigma:
        parts.append(f"blur sigma {s.blur_sigma[0]:g}-{s.blur_sigma[1]:g}")
    if s.jpeg_quality:
        parts.append(f"JPEG quality {s.jpeg_quality[0]}-{s.jpeg_quality[1]}")
    line = f"augment: {', '.join(parts)}, each with p={s.p:g}" if parts else "augment:"
    flips = [f"{name} p={value:g}" for name in ("hflip", "vflip") if (value := getattr(s, name))]
    if flips:
        line += ("; " if parts else " ") + ", ".join(flips)
    return line + "; seeded by (train.seed, epoch, sample id)"


def settings_record(settings: Any, seed: int) -> dict[str, Any] | None:
    """What manifest.json records: the settings as configured, and what seeds them."""
    if not is_active(settings):
        return None
    return {**settings.model_dump(mode="json"), "seed": seed, "seeded_by": "train.seed, epoch, sample id, media index"}


class Augmenter:
    """Applies `data.augment` to one image (PIL) or one video (`media.Video`) of a sample in an epoch."""

    def __init__(self, settings: Any, seed: int):
        self.settings = settings
        self.seed = int(seed)

    @classmethod
    def from_config(cls, config: Any) -> Augmenter | None:
        settings = config.data.augment
        return cls(settings, config.train.seed) if is_active(settings) else None

    def generator(self, epoch: int, sample_id: str, position: int) -> Any:
        import torch

        key = f"{self.seed}\x00{epoch}\x00{sample_id}\x00{position}".encode()
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))

    def image(self, image: Any, epoch: int, sample_id: str, position: int) -> Any:
        """The augmented PIL image (the same object when no transform was drawn)."""
        from torchvision.transforms.v2 import functional as F

        ops = self._draw(self.generator(epoch, sample_id, position), image.height, image.width)
        if not ops:
            return image
        return F.to_pil_image(_apply(ops, F.pil_to_tensor(image)))

    def video(self, video: Any, epoch: int, sample_id: str, position: int) -> Any:
        """The video with every frame transformed by one draw of parameters."""
        import torch

        frames = video.frames  # uint8 [T, H, W, 3]
        if len(frames) == 0:
            return video
        ops = self._draw(self.generator(epoch, sample_id, position), frames.shape[1], frames.shape[2])
        if not ops:
            return video
        tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
        out = _apply(ops, tensor).permute(0, 2, 3, 1).contiguous().numpy()
        return replace(video, frames=out)

    def _draw(self, g: Any, height: int, width: int) -> list[tuple[str, Any]]:
        """The transforms and their parameters for one medium. Every coin and parameter is drawn whether or not
        it is used, so one setting never shifts the draws of another."""
        import torch

        s = self.settings

        def rand() -> float:
            return float(torch.rand((), generator=g))

        def uniform(low: float, high: float) -> float:
            return low + (high - low) * rand()

        coins = {name: rand() for name in ("crop", "rotate", "hflip", "vflip", "jitter", "blur", "jpeg")}
        area = uniform(s.crop_scale, 1.0)
        crop_y, crop_x = rand(), rand()
        angle = uniform(-s.rotation, s.rotation)
        factors = {name: uniform(-getattr(s, name), getattr(s, name)) for name in JITTER}
        order = torch.randperm(4, generator=g).tolist()
        sigma = uniform(*s.blur_sigma) if s.blur_sigma else 0.0
        quality_draw = rand()

        ops: list[tuple[str, Any]] = []
        if s.crop_scale < 1 and coins["crop"] < s.p:
            h = max(1, min(height, round(height * math.sqrt(area))))
            w = max(1, min(width, round(width * math.sqrt(area))))
            top, left = int(crop_y * (height - h + 1)), int(crop_x * (width - w + 1))
            ops.append(("crop", (top, left, h, w, height, width)))
        if s.rotation and coins["rotate"] < s.p:
            ops.append(("rotate", angle))
        if coins["hflip"] < s.hflip:
            ops.append(("hflip", None))
        if coins["vflip"] < s.vflip:
            ops.append(("vflip", None))
        jitter = [(JITTER[i], factors[JITTER[i]]) for i in order if getattr(s, JITTER[i])]
        if jitter and coins["jitter"] < s.p:
            ops.extend(jitter)
        if s.blur_sigma and coins["blur"] < s.p:
            limit = min(height, width)
            kernel = min(2 * math.ceil(3 * sigma) + 1, limit - (1 - limit % 2))  # odd, no wider than the image
            if kernel >= 3:
                ops.append(("blur", (kernel, sigma)))
        if s.jpeg_quality and coins["jpeg"] < s.p:
            low, high = s.jpeg_quality
            ops.append(("jpeg", min(high, low + int(quality_draw * (high - low + 1)))))
        return ops


def _apply(ops: list[tuple[str, Any]], x: Any) -> Any:
    """Run the drawn transforms on a uint8 tensor [..., 3, H, W] (one image or a video's frames)."""
    from torchvision.transforms.v2 import functional as F

    for name, value in ops:
        if name == "crop":
            top, left, h, w, height, width = value
            x = F.resized_crop(x, top, left, h, w, [height, width], antialias=True)
        elif name == "rotate":
            fill = [float(c) for c in x.float().mean(dim=(-1, -2)).reshape(-1, x.shape[-3]).mean(0)]
            x = F.rotate(x, value, interpolation=F.InterpolationMode.BILINEAR, fill=fill)
        elif name == "hflip":
            x = F.horizontal_flip(x)
        elif name == "vflip":
            x = F.vertical_flip(x)
        elif name == "brightness":
            x = F.adjust_brightness(x, 1.0 + value)
        elif name == "contrast":
            x = F.adjust_contrast(x, 1.0 + value)
        elif name == "saturation":
            x = F.adjust_saturation(x, 1.0 + value)
        elif name == "hue":
            x = F.adjust_hue(x, value)
        elif name == "blur":
            kernel, sigma = value
            x = F.gaussian_blur(x, [kernel, kernel], [sigma, sigma])
        elif name == "jpeg":
            x = _jpeg(x, value)
    return x


def _jpeg(x: Any, quality: int) -> Any:
    """Encode and decode each image as JPEG at `quality`, with Pillow (torchvision's own JPEG codec is deprecated
    since 0.29 in favour of TorchCodec, which vlmkit does not need otherwise)."""
    import io

    import numpy as np
    import torch
    from PIL import Image

    frames = x.reshape(-1, *x.shape[-3:])
    out = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame.permute(1, 2, 0).contiguous().numpy()).save(buffer, "JPEG", quality=quality)
        with Image.open(buffer) as decoded:
            out.append(torch.from_numpy(np.array(decoded.convert("RGB"))).permute(2, 0, 1))
    return torch.stack(out).reshape(x.shape)
