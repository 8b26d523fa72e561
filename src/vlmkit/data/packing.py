"""Padding-free packing: whole samples laid end to end in rows of up to `capacity` tokens, isolated from each other.

Planning: every sample's exact token count (the processor's own expansion of its media, so a row can never
overflow) goes into first-fit bin packing, the samples visited in an order drawn from the seed, so the rows are a
pure function of (data, seed) and a resumed run sees the same rows. Not first-fit-*decreasing*: a row is one
optimiser step, and sorting by length puts samples that differ only in answer length (or are identical in shape)
into the same rows, long answers with long ones, which trained measurably worse than random unpacked batches
(benchmarks/bench_train.py, docs/training.md). A random order mixes rows as random batches are mixed and still fills
them to 90-99 % on VQA-like length mixes.

Batching (`PackingCollator`): the samples of a micro-batch are processed in one processor call, in row order, so the
flat media tensors (Qwen's patches and grids, LLaVA's images) are already in the order the model consumes them.
Each sample's tokens, labels and position ids are then cut out of its padded row and laid end to end. Position ids
restart at 0 per sample (for the Qwen families: the model's own per-sample M-RoPE ids, with the plain text positions
as an extra leading row), and no attention mask is passed: transformers then derives the sample boundaries from the
position ids, as a block-diagonal mask under SDPA/eager or as varlen `cu_seqlens` under flash attention (which needs
the whole micro-batch flattened into one row, `flatten=True`). The first token of every sample carries no label,
so no sample learns to predict across a boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import VlmkitError
from .collate import IGNORE_INDEX, VlmCollator
from .schema import Sample

# Keys whose last dimension is the token: these are cut per sample and concatenated per row.
TOKEN_KEYS = ("input_ids", "labels", "mm_token_type_ids", "token_type_ids")


@dataclass
class PackPlan:
    """Rows of sample indices and the numbers that describe how well they are filled."""

    rows: list[list[int]]
    lengths: list[int]  # exact tokens per sample (dropped samples included)
    capacity: int
    dropped: list[str] = field(default_factory=list)

    def row_tokens(self) -> list[int]:
        return [sum(self.lengths[i] for i in row) for row in self.rows]

    @property
    def samples(self) -> int:
        return sum(len(row) for row in self.rows)

    def efficiency(self) -> float:
        """Real tokens over row capacity (rows x capacity)."""
        return sum(self.row_tokens()) / max(1, len(self.rows) * self.capacity)

    def summary(self) -> dict[str, Any]:
        return {
            "rows": len(self.rows),
            "samples": self.samples,
            "capacity": self.capacity,
            "efficiency": round(self.efficiency(), 4),
            "samples_per_row": round(self.samples / max(1, len(self.rows)), 3),
            "dropped_for_length": list(self.dropped),
        }


def first_fit(lengths: Sequence[int], capacity: int, seed: int = 0) -> list[list[int]]:
    """Bins of indices whose lengths sum to at most `capacity`: indices visited in an order drawn from `seed`, each
    into the first bin with room (not sorted by length: see the module docstring).

    A max-segment-tree over the bins' free space finds the first bin with room in O(log bins), so a million samples
    pack in seconds.
    """
    if any(n > capacity for n in lengths):
        raise ValueError("a length exceeds the capacity")
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed)).tolist()
    size = 1
    while size < max(1, len(lengths)):
        size *= 2
    free = [0] * (2 * size)  # leaves: free space of bin k (capacity once opened, 0 before); inner: max of children
    rows: list[list[int]] = []
    for i in order:
        need = lengths[i]
        if free[1] >= need:
            node = 1
            while node < size:
                node = 2 * node if free[2 * node] >= need else 2 * node + 1
            k = node - size
        else:
            k = len(rows)
            rows.append([])
            node = size + k
            free[node] = capacity
        rows[k].append(i)
        free[node] -= need
        node //= 2
        while node:
            free[node] = max(free[2 * node], free[2 * node + 1])
            node //= 2
    return rows


def exact_lengths(samples: Sequence[Sample], collator: VlmCollator, chunk: int = 16) -> list[int]:
    """Each sample's token count after the processor expanded its media: the processor runs once over the data."""
    lengths: list[int] = []
    for start in range(0, len(samples), chunk):
        part = samples[start : start + chunk]
        rendered = [collator.render_training(s) for s in part]
        media = [collator._load_media(s, s.messages) for s in part]
        batch = collator._process(
            [r.text for r in rendered], [m[0] for m in media], [m[1] for m in media], padding_side="right"
        )
        lengths.extend(int(n) for n in batch["attention_mask"].sum(-1))
    return lengths


def plan_packing(
    samples: Sequence[Sample],
    collator: VlmCollator,
    capacity: int,
    seed: int,
    *,
    on_overflow: str = "error",
    lengths: Sequence[int] | None = None,
) -> PackPlan:
    """Exact lengths, over-long samples dropped or reported (per `on_overflow`), then first-fit rows (seeded order)."""
    lengths = list(lengths) if lengths is not None else exact_lengths(samples, collator)
    keep, dropped = [], []
    for i, n in enumerate(lengths):
        if n <= capacity:
            keep.append(i)
        elif on_overflow == "drop":
            dropped.append(samples[i].id)
        else:
            raise VlmkitError(
                f"sample '{samples[i].id}' is {n} tokens, over the packing row capacity of {capacity} "
                "(data.max_length); raise max_length, lower max_pixels / nframes, or drop over-long samples "
                "(data.on_overflow: drop)"
            )
    if not keep:
        raise VlmkitError(f"every sample is longer than the packing row capacity of {capacity} tokens")
    rows = first_fit([lengths[i] for i in keep], capacity, seed)
    return PackPlan([[keep[j] for j in row] for row in rows], lengths, capacity, dropped)


def default_capacity(lengths: Sequence[int], max_length: int | None, batch_size: int) -> int:
    """`data.max_length` when set; otherwise room for `batch_size` samples of mean length (at least the longest), so
    that one row replaces one padded unpacked micro-batch. The 1/16 slack lets a row take `batch_size` samples when
    their lengths are all alike (exactly batch x mean would then fit one fewer)."""
    if max_length:
        return int(max_length)
    return max(max(lengths), math.ceil(batch_size * sum(lengths) / max(1, len(lengths)) * 17 / 16))


def rows_per_batch(plan: PackPlan, batch_size: int) -> int:
    """Rows per micro-batch that hold `batch_size` samples on average, so train.batch_size keeps meaning samples
    per micro-step and a packed run takes about as many optimiser steps as an unpacked one."""
    return max(1, round(batch_size * len(plan.rows) / max(1, plan.samples)))


class PackedRows(Dataset):
    """Map-style dataset whose items are rows: the list of samples packed together."""

    def __init__(self, samples: Sequence[Sample], plan: PackPlan):
        self.samples = list(samples)
        self.plan = plan

    def __len__(self) -> int:
        return len(self.plan.rows)

    def __getitem__(self, index: int) -> list[Sample]:
        return [self.samples[i] for i in self.plan.rows[index]]


class PackingCollator:
    """Rows of samples -> one packed batch (input_ids, labels, position_ids, media; no attention mask)."""

    def __init__(self, base: VlmCollator, model_config: Any, *, flatten: bool = False):
        self.base = base
        self.family = base.family
        self.model_config = model_config
        self.flatten = flatten
        self.pad_id = base.tokenizer.pad_token_id if base.tokenizer.pad_token_id is not None else 0
        self.real_tokens = 0  # running totals, for the padding share of what went through the model
        self.slots = 0

    @property
    def dropped(self) -> list[str]:
        return self.base.dropped

    def __call__(self, rows: Sequence[Any]) -> dict[str, Any]:
        from .image_augment import untag

        rows, epoch = untag(rows)  # training rows come tagged with their epoch (for data.augment)
        # training items are rows (lists of samples); evaluation hands plain samples, one row each
        rows = [[r] if isinstance(r, Sample) else list(r) for r in rows]
        rows = [r for r in rows if r]
        if self.flatten:
            rows = [[s for row in rows for s in row]]
        flat = [s for row in rows for s in row]
        batch = self.base.training_batch(flat, epoch=epoch)
        if len(batch["input_ids"]) != len(flat):
            raise VlmkitError("a sample of a packed row was dropped for length; the packing plan is stale")
        lengths = batch["attention_mask"].sum(-1).tolist()
        positions = self.family.packed_position_ids(batch, self.model_config)
        out: dict[str, Any] = {}
        first = 0
        per_row: dict[str, list[torch.Tensor]] = {}
        for row in rows:
            members = range(first, first + len(row))
            first += len(row)
            for key in (*TOKEN_KEYS, "position_ids"):
                source = positions if key == "position_ids" else batch.get(key)
                if source is None:
                    continue
                parts = [source[..., i, : lengths[i]] for i in members]
                if key == "labels":
                    parts = [p.clone() for p in parts]
                    for p in parts:
                        p[..., 0] = IGNORE_INDEX  # nothing predicts a sample's first token across the boundary
                per_row.setdefault(key, []).append(torch.cat(parts, dim=-1))
            for key in self.family.per_sample_media_keys:
                if batch.get(key) is not None:
                    per_row.setdefault(key, []).append(torch.cat([batch[key][i] for i in members], dim=0))
        width = max(t.shape[-1] for t in per_row["input_ids"])
        self.real_tokens += sum(lengths)
        self.slots += width * len(rows)
        pads = {"labels": IGNORE_INDEX, "input_ids": self.pad_id}
        for key, parts in per_row.items():
            if key in self.family.per_sample_media_keys:
                out[key] = _stack_padded_dim0(parts)
            elif key == "position_ids":
                out[key] = torch.stack([_pad_positions(p, width) for p in parts], dim=-2)
            else:
                out[key] = torch.stack(
                    [torch.nn.functional.pad(p, (0, width - p.shape[-1]), value=pads.get(key, 0)) for p in parts]
                )
        for key, value in batch.items():  # flat media tensors (patches, grids, images) pass through in order
            if key not in out and key != "attention_mask" and key not in TOKEN_KEYS:
                out[key] = value
        out["use_cache"] = False  # transformers reads packed position ids only when no cache is being built
        return out


def _pad_positions(positions: torch.Tensor, width: int) -> torch.Tensor:
    """Pad a row's position ids to `width` with a run 0, 1, ... so the padding is a sequence of its own."""
    missing = width - positions.shape[-1]
    if missing <= 0:
        return positions
    tail = torch.arange(missing, dtype=positions.dtype).expand(*positions.shape[:-1], missing)
    return torch.cat([positions, tail], dim=-1)


def _stack_padded_dim0(parts: list[torch.Tensor]) -> torch.Tensor:
    """Stack per-row media tensors of shape (n_k, ...) into (rows, max n_k, ...), zero-filled (SmolVLM drops
    all-zero images)."""
    most = max(p.shape[0] for p in parts)
    padded = [torch.cat([p, p.new_zeros((most - p.shape[0], *p.shape[1:]))]) if p.shape[0] < most else p for p in parts]
    return torch.stack(padded)
