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

KINDS = (("image", "image_grid_thw"), ("video", "video_grid_thw"))


def check_media_tokens(batch: Any, samples: Sequence[Sample], family: Any, processor: Any) -> None:
    """Raise VlmkitError naming the sample whose placeholder count differs from its media's feature count.

    Applies to families whose processor reports a patch grid per image / video (the Qwen families): each
    item yields t*h*w / merge_size**2 features. Families with a fixed count per image are checked by their
    processor when it expands the placeholders.
    """
    input_ids = batch["input_ids"]
    for kind, grid_key in KINDS:
        token = family.image_token if kind == "image" else family.video_token
        if token is None or grid_key not in batch:
            continue
        merge = getattr(getattr(processor, f"{kind}_processor", None), "merge_size", None)
        if not merge:
            continue
        token_id = processor.tokenizer.convert_tokens_to_ids(token)
        features = (batch[grid_key].prod(-1) // merge**2).tolist()
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
