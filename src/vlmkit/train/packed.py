"""`data.packing` for a run: the packing plan from the config, and the collator that fits the attention backend.

Flash attention separates packed samples only inside a single flattened row (varlen `cu_seqlens` from the position
ids), so under it each micro-batch of rows is flattened into one; SDPA and eager get a block-diagonal mask per row,
and keep rows apart (a mask over one long row would cost quadratically more).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import RunConfig
from ..data.collate import VlmCollator
from ..data.packing import PackingCollator, PackPlan, default_capacity, exact_lengths, plan_packing, rows_per_batch
from ..data.schema import Sample


def plan_for_run(config: RunConfig, samples: Sequence[Sample], collator: VlmCollator) -> PackPlan:
    """Rows for the training samples: exact token counts, capacity data.max_length (else train.batch_size samples
    of mean length), first-fit with samples visited in an order drawn from train.seed."""
    lengths = exact_lengths(samples, collator)
    capacity = default_capacity(lengths, config.data.max_length, config.train.batch_size)
    return plan_packing(
        samples, collator, capacity, config.train.seed, on_overflow=config.data.on_overflow, lengths=lengths
    )


def packing_collator(collator: VlmCollator, model: Any) -> PackingCollator:
    attention = str(getattr(model.config, "_attn_implementation", "") or "")
    return PackingCollator(collator, model.config, flatten="flash" in attention)


def describe(plan: PackPlan, batch_size: int) -> str:
    line = (
        f"packing: {plan.samples} samples in {len(plan.rows)} rows of up to {plan.capacity} tokens, "
        f"efficiency {plan.efficiency():.1%} (real tokens / row capacity), "
        f"{rows_per_batch(plan, batch_size)} row(s) per micro-batch"
    )
    if plan.dropped:
        line += f", {len(plan.dropped)} over-long sample(s) dropped"
    return line


def check_packing(config: RunConfig, checked: Any) -> str:
    """The packing line of `vlmkit train --check`: loads the processor only, plans the rows, describes them."""
    from ..models.loading import load_processor
    from .runner import media_settings

    processor = load_processor(config.model.processor or config.model.path, checked.family)
    collator = VlmCollator(
        processor,
        checked.family,
        max_length=config.data.max_length,
        on_overflow=config.data.on_overflow,
        media=media_settings(config),
    )
    return describe(plan_for_run(config, checked.train_samples, collator), config.train.batch_size)
