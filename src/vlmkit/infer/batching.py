"""Length bucketing: group requests of similar prompt length so left padding wastes little compute.

The length is estimated before tokenizing (prompt characters plus a fixed weight per image or video);
batches are formed from the longest requests down, so an out-of-memory batch shows up first, and the
caller puts each result back at its request's index.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..data.schema import Sample

# A media item becomes tens to thousands of tokens depending on family and resolution; a few hundred
# characters' worth keeps image questions together and apart from text-only ones.
MEDIA_WEIGHT_CHARS = 512


def prompt_length_key(sample: Sample) -> int:
    """Cheap stand-in for the tokenized prompt length."""
    messages = sample.prompt_messages()
    chars = sum(len(m.text()) for m in messages)
    media = sum(1 for m in messages for p in m.content if p.type != "text")
    return chars + MEDIA_WEIGHT_CHARS * media


def plan_batches(samples: Sequence[Sample], batch_size: int) -> list[list[int]]:
    """Request indices grouped into batches of at most `batch_size`, longest prompts first."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(samples)), key=lambda i: (-prompt_length_key(samples[i]), i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
