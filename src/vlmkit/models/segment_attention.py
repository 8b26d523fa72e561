"""Attention for packed rows without a dense mask: SDPA run once per sample segment.

transformers isolates the samples of a packed row under SDPA with a block-diagonal (rows x T x T) mask. The kernel
then still computes every query against every key of the whole row and masks most of it away: a row of n samples
costs about n times the attention work of the samples alone, and the mask itself is built per forward. Flash
attention avoids that with varlen `cu_seqlens`; SDPA has no varlen form, so here each sample's segment (found, as
transformers finds it, where the position ids stop counting up by one) gets its own causal SDPA call, and the
outputs are laid end to end again. Same numbers as the masked call (tests/data/test_packing.py runs both), work
proportional to the sum of squared sample lengths instead of the squared row length.

Registered with transformers' AttentionInterface under `segment_sdpa` and set on the language model only (the
vision tower keeps its own attention). Inputs with a padding mask (unpacked batches, evaluation) take the plain
SDPA path with the mask as usual.
"""

from __future__ import annotations

from typing import Any

import torch

NAME = "segment_sdpa"


def segment_bounds(position_ids: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Per row, the (start, end) of each packed sample, by transformers' own rule (a sample starts where the position
    ids stop counting up by one)."""
    from transformers.masking_utils import find_packed_sequence_indices

    sequence = find_packed_sequence_indices(position_ids)  # None: one sample per row
    if sequence is None:
        return [[(0, position_ids.shape[-1])] for _ in range(position_ids.shape[0])]
    bounds = []
    for row in sequence:
        edges = [0, *torch.unique_consecutive(row, return_counts=True)[1].cumsum(0).tolist()]
        bounds.append(list(zip(edges[:-1], edges[1:])))
    return bounds


_last: tuple[torch.Tensor | None, list[list[tuple[int, int]]]] = (None, [])


def _bounds_for_forward(position_ids: torch.Tensor, rows: int) -> list[list[tuple[int, int]]]:
    """Every layer of one forward gets the same position-id tensor: find its segments once (a host sync on a GPU),
    not once per layer."""
    global _last
    if _last[0] is not position_ids:
        _last = (position_ids, segment_bounds(position_ids.expand(rows, -1)))
    return _last[1]


def segment_sdpa_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    packed = attention_mask is None and position_ids is not None and query.shape[2] == key.shape[2] > 1
    if not packed:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    bounds = _bounds_for_forward(position_ids, query.shape[0])
    if all(len(row) == 1 for row in bounds):  # nothing packed: one causal call over the whole batch
        return sdpa_attention_forward(module, query, key, value, None, **kwargs)
    rows = []
    for b, row in enumerate(bounds):
        parts = [
            sdpa_attention_forward(
                module, query[b : b + 1, :, s:e], key[b : b + 1, :, s:e], value[b : b + 1, :, s:e], None, **kwargs
            )[0]
            for s, e in row
        ]
        rows.append(torch.cat(parts, dim=1))  # sdpa_attention_forward returns (batch, tokens, heads, head_dim)
    return torch.cat(rows, dim=0), None


def segment_mask(*, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor | None:
    """No mask for packed or unpadded input (the attention finds the segments); SDPA's own mask for padding."""
    if attention_mask is None:
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(attention_mask=attention_mask, **kwargs)


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    AttentionInterface.register(NAME, segment_sdpa_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, segment_mask)


def use_segment_attention(model: Any) -> bool:
    """Switch the language model of `model` (a transformers VLM, or a PEFT model around one) from SDPA to
    `segment_sdpa`; anything else (eager, flash attention, which has varlen) is left as it is. True if switched."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    text = base.config.get_text_config()
    if getattr(text, "_attn_implementation", None) != "sdpa":
        return False
    register()
    base.set_attn_implementation({"text_config": NAME})
    return text._attn_implementation == NAME
