"""The training loss: logits only where there is a label, and a normalisation that length grouping cannot bias.

Logits: labels cover the assistant's tokens only, a small share of a VQA sequence (the prompt and hundreds of
image tokens carry none). The stock forward projects every position onto the vocabulary (151k columns for Qwen)
and then ignores most of it; here the model is asked for logits at the labelled positions only (`logits_to_keep`
with a boolean mask), which gives the same loss and gradients for a fraction of the head's compute and memory.

Normalisation: the stock loss divides a step's summed token losses by the step's own label count. With random
batches every answer token then weighs about the same; with length-grouped batches long answers land together,
and each of their tokens would weigh several times less than a token of a short-answer batch. Under grouping the
Trainer therefore divides by the *expected* label count of a step (mean answer tokens per sample x samples), so
the gradient is, in expectation, that of the plain token mean over the dataset. The logged loss stays the step's
true token mean (`report_true_mean`).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

from ..data.collate import IGNORE_INDEX


def supports_answer_only_logits(model: Any) -> bool:
    """True when the model's forward takes `logits_to_keep` (transformers' VLMs do; a boolean mask needs 5.x)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # unwrap a PeftModel
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def answer_only_loss(
    model: Any, inputs: dict[str, Any], num_items_in_batch: torch.Tensor | int | None = None
) -> tuple[torch.Tensor, Any]:
    """Causal-LM cross-entropy over the labelled tokens: summed, then divided by `num_items_in_batch` (the
    Trainer's count over the whole accumulated batch) or by this batch's label count."""
    labels = inputs["labels"]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX  # position p predicts token p + 1
    targets = labels[:, 1:][keep[:, :-1]]
    outputs = model(**{k: v for k, v in inputs.items() if k != "labels"}, logits_to_keep=keep)
    logits = outputs.logits.reshape(-1, outputs.logits.shape[-1]).float()
    loss = F.cross_entropy(logits, targets.to(logits.device), reduction="sum")
    denominator = num_items_in_batch if num_items_in_batch is not None else targets.numel()
    if isinstance(denominator, torch.Tensor):
        denominator = denominator.to(loss.device)
    return loss / (denominator if targets.numel() else 1), outputs


def report_true_mean(loss: torch.Tensor, *, expected: Any, actual: Any) -> torch.Tensor:
    """`loss` was divided by the expected label count; return a tensor whose value is the sum divided by the
    actual count (what the logs should show) and whose gradient is still that of `loss`."""
    shown = loss * (expected / actual)
    return loss + (shown - loss).detach()
