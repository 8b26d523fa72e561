"""Check, before generation, that each prompt's media placeholder tokens match the features its media produce.

The model checks this too, but only for the whole batch and with a message that names no sample ("Video
features and video tokens do not match"). Checking here per sample turns a misalignment into a clear error
for that one request, which batched inference then reports while the rest of the batch still runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..data.schema import Sample
from ..errors import VlmkitError

KINDS = ("image", "video")


def check_media_tokens(batch: Any, samples: Sequence[Sample], family: Any, processor: Any) -> None:
    """Raise VlmkitError naming the sample whose placeholder count differs from its media's feature count.

    The features each item yields come from the family adapter (`batch_features`: for the Qwen families,
    t*h*w / merge_size**2 from the processor's grid). Families whose processor reports no per-item count
    check it themselves when they expand the placeholders.
    """
    input_ids = batch["input_ids"]
    for kind in KINDS:
        token = family.image_token if kind == "image" else family.video_token
        if token is None:
            continue
        features = family.batch_features(batch, kind, processor)
        if features is None:
            continue
        token_id = processor.tokenizer.convert_tokens_to_ids(token)
        cursor = 0
        for row, sample in enumerate(samples):
            items = sum(1 for m in sample.prompt_messages() for p in m.content if p.type == kind)
            expected = sum(features[cursor : cursor + items])
            cursor += items
            found = int((input_ids[row] == token_id).sum())
            if found != expected:
                raise VlmkitError(
                    f"sample '{sample.id}': the prompt has {found} {kind} tokens but its {items} {kind}(s) give "
                    f"{expected} features; the {kind} cannot be aligned with the prompt (check that the text does "
                    f"not contain '{token}' and that the {kind} is not cut by a length limit)"
                )
        if cursor != len(features):
            raise VlmkitError(f"the batch has {len(features)} {kind} grids for {cursor} {kind}s in its prompts")
