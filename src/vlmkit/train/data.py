"""Training data: samples as a map-style dataset, a cheap length per sample, and a resumable length-grouped order.

The Trainer hands lists of `Sample` objects to our collator (`VlmCollator`), which renders, loads media and
builds labels per batch. Lengths are counted once (rendered text tokens + the family adapter's exact media token
count from image and video headers), never by running the processor over the whole dataset.

Batches are grouped by the length of the *prompt* (media + question tokens), which is what varies most in VQA and
decides the padding. Grouping by the full length would also sort by answer length, and batches of long answers
would get a different share of the gradient than batches of short ones; with the prompt as the key, answers stay
mixed (and train/loss.py normalises each step by the expected label count, so grouping re-weights nothing).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices

from ..data.schema import Sample


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
    total: list[int]  # per sample: the sequence length (rendered text tokens + media tokens, exact)
    answer: list[int]  # per sample: tokens inside assistant turns, i.e. the labelled tokens (approximately)

    def prompt(self) -> list[int]:
        """Tokens before and between the answers: the grouping key."""
        return [t - a for t, a in zip(self.total, self.answer)]

    def mean_answer_tokens(self) -> float:
        return sum(self.answer) / max(1, len(self.answer))


def estimate_lengths(samples: Sequence[Sample], collator: Any) -> Lengths:
    """Token counts per sample, from one rendering of each conversation and the family's media token rule
    (`VlmCollator.media_tokens`: file headers only, no decoding, no processor call). The totals are the exact
    sequence lengths the collator will build (`VlmCollator.sequence_length`, one sample at a time).

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
    media = [sum(cost.tokens - 1 for cost in collator.media_tokens(s)) for s in samples]
    return Lengths([int(n) + m for n, m in zip(counts, media)], answer)


def over_length(samples: Sequence[Sample], totals: Sequence[int], max_length: int) -> list[int]:
    """Indices of the samples whose exact length is over `max_length`. Samples with media that are not local files
    are left out: their count is an estimate, and the collator checks them when it builds them."""
    return [
        i
        for i, (sample, total) in enumerate(zip(samples, totals))
        if total > max_length and all(_is_local(part) for message in sample.messages for part in message.content)
    ]


def first_over_length(samples: Sequence[Sample], totals: Sequence[int], max_length: int) -> tuple[Sample, int] | None:
    """The first sample whose exact length is over `max_length`, with that length."""
    over = over_length(samples, totals, max_length)
    return (samples[over[0]], totals[over[0]]) if over else None


def without_over_length(
    samples: Sequence[Sample], lengths: Lengths, max_length: int
) -> tuple[list[Sample], Lengths, list[str]]:
    """`data.on_overflow: drop` decided before training, in the main process: the samples and lengths left, and
    the ids dropped. (Left to the collator, a drop made in a DataLoader worker process never reached the
    manifest.)"""
    over = set(over_length(samples, lengths.total, max_length))
    keep = [i for i in range(len(samples)) if i not in over]
    kept = Lengths([lengths.total[i] for i in keep], [lengths.answer[i] for i in keep])
    return [samples[i] for i in keep], kept, [samples[i].id for i in sorted(over)]


def _is_local(part: Any) -> bool:
    source = getattr(part, "image", None) or getattr(part, "video", None)
    return not isinstance(source, str) or not ("://" in source or source.startswith("data:"))


class SeededShuffle(Sampler[int]):
    """A random order drawn from a generator seeded by seed + epoch (the plain order of an augmented run without
    length grouping, whose keys `EpochKeys` must wrap: accelerate seeds only a bare RandomSampler itself)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist())


class EpochKeys(Sampler[tuple[int, int]]):
    """Yields (epoch, index) for the indices of `inner`: the sampler runs in the main process and is told the epoch
    by the Trainer (set_epoch, also when resuming), so the epoch reaches the collator in DataLoader workers too."""

    def __init__(self, inner: Sampler[int]):
        self.inner = inner
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return ((epoch, index) for index in self.inner)


class EpochTagged(Dataset):
    """Items of `inner` tagged with the epoch that drew them (`data.augment`): indexed by `EpochKeys`' pairs."""

    def __init__(self, inner: Dataset):
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        from ..data.image_augment import EpochItem

        epoch, index = key
        return EpochItem(self.inner[index], int(epoch))
