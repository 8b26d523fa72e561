"""Training data: samples as a map-style dataset, a cheap length per sample, and a resumable length-grouped order.

The Trainer hands lists of `Sample` objects to our collator (`VlmCollator`), which renders, loads media and
builds labels per batch. Lengths are estimated once (rendered text tokens + media tokens estimated from image
headers), never by running the processor over the whole dataset.

Batches are grouped by the length of the *prompt* (media + question tokens), which is what varies most in VQA and
decides the padding. Grouping by the full length would also sort by answer length, and batches of long answers
would get a different share of the gradient than batches of short ones; with the prompt as the key, answers stay
mixed (and train/loss.py normalises each step by the expected label count, so grouping re-weights nothing).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices

from ..data.schema import ImagePart, Sample, VideoPart

DEFAULT_MEDIA_TOKENS = 64  # a guess for processors whose token count we cannot read; only ordering matters
DEFAULT_VIDEO_FRAMES = 16


class SampleDataset(Dataset):
    def __init__(self, samples: Sequence[Sample]):
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]


class GroupedByLengthSampler(Sampler[int]):
    """Length-grouped order (transformers' mega-batch grouping) drawn from a generator seeded by seed + epoch.

    The stock LengthGroupedSampler draws from the global RNG, so a run resumed in a later epoch would see a
    different order than an uninterrupted one; seeding per epoch makes the order a pure function of the epoch.
    """

    def __init__(self, lengths: Sequence[int], group_size: int, seed: int):
        self.lengths = list(lengths)
        self.group_size = group_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.group_size, generator=generator))


@dataclass
class Lengths:
    total: list[int]  # per sample: rendered text tokens + estimated media tokens
    answer: list[int]  # per sample: tokens inside assistant turns, i.e. the labelled tokens (approximately)

    def prompt(self) -> list[int]:
        """Tokens before and between the answers: the grouping key."""
        return [t - a for t, a in zip(self.total, self.answer)]

    def mean_answer_tokens(self) -> float:
        return sum(self.answer) / max(1, len(self.answer))


def estimate_lengths(samples: Sequence[Sample], collator: Any) -> Lengths:
    """Token counts per sample, from one rendering of each conversation (no media decoding, no processor).

    Rendering every sample up front also finds samples the template cannot learn from (no assistant turn)
    before training starts, naming them.
    """
    tokenizer = collator.tokenizer
    rendered = [collator.render_training(s) for s in samples]
    counts = tokenizer([r.text for r in rendered], add_special_tokens=False, return_length=True)["length"]
    spans = [(i, r.text[a:b]) for i, r in enumerate(rendered) for a, b in r.spans]
    answer = [0] * len(samples)
    if spans:
        span_counts = tokenizer([text for _, text in spans], add_special_tokens=False, return_length=True)["length"]
        for (i, _), n in zip(spans, span_counts):
            answer[i] += int(n)
    media = MediaTokenEstimator(collator.processor, collator.media)
    return Lengths([int(n) + media.for_sample(s) for n, s in zip(counts, samples)], answer)


class MediaTokenEstimator:
    """Approximate media tokens: exact-ish for Qwen-style dynamic resolution, a constant otherwise."""

    def __init__(self, processor: Any, media: Any):
        image_processor = getattr(processor, "image_processor", None)
        self.patch = getattr(image_processor, "patch_size", None)
        self.merge = getattr(image_processor, "merge_size", None)
        self.dynamic = bool(self.patch and self.merge)
        self.min_pixels = media.min_pixels or getattr(image_processor, "min_pixels", None) or 0
        self.max_pixels = media.max_pixels or getattr(image_processor, "max_pixels", None) or 0
        fixed = next(
            (
                getattr(processor, a)
                for a in ("image_seq_length", "image_seq_len", "num_image_tokens")
                if isinstance(getattr(processor, a, None), int)
            ),
            None,
        )
        self.fixed = fixed or DEFAULT_MEDIA_TOKENS
        self.nframes = media.nframes or min(DEFAULT_VIDEO_FRAMES, media.max_frames)

    def image_tokens(self, width: int, height: int) -> int:
        if not self.dynamic:
            return self.fixed
        pixels = width * height
        if self.max_pixels:
            pixels = min(pixels, self.max_pixels)
        pixels = max(pixels, self.min_pixels)
        return max(1, math.ceil(pixels / (self.patch * self.merge) ** 2))

    def for_sample(self, sample: Sample) -> int:
        total = 0
        for message in sample.messages:
            for part in message.content:
                if isinstance(part, ImagePart):
                    total += self.image_tokens(*_image_size(part.image))
                elif isinstance(part, VideoPart):
                    per_frame = self.image_tokens(*(_probe_video_size(part.video)))
                    total += max(1, self.nframes // 2) * per_frame  # frames are paired in time (temporal patch 2)
        return total


def _image_size(source: str) -> tuple[int, int]:
    """Width and height from the file header only (no decoding); a default square when unreadable here."""
    from PIL import Image

    try:
        with Image.open(source) as image:
            return image.size
    except Exception:  # URLs, data URLs and unreadable files are checked properly when the batch is built
        return (448, 448)


def _probe_video_size(source: str) -> tuple[int, int]:
    try:
        import av

        with av.open(source) as container:
            stream = container.streams.video[0]
            return stream.codec_context.width, stream.codec_context.height
    except Exception:
        return (448, 448)
