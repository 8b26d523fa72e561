"""Parameter bookkeeping: trainable/total counts per group, and optimiser groups with per-group learning rates."""

from __future__ import annotations

from typing import Any

import torch

from ..config import OptimSection
from ..errors import ConfigError, VlmkitError
from ..models.base import GROUPS, FamilyAdapter


def stored_numel(param: torch.Tensor) -> int:
    """Logical parameter count; bitsandbytes 4-bit weights pack two values per stored byte."""
    if param.__class__.__name__ == "Params4bit":
        return param.numel() * 2
    return param.numel()


def count_parameters(model: torch.nn.Module, family: FamilyAdapter) -> dict[str, dict[str, int]]:
    """{group: {"trainable": n, "total": n}} plus a "all" row. PEFT's frozen module copies count as frozen."""
    counts = {g: {"trainable": 0, "total": 0} for g in (*GROUPS, "all")}
    for name, param in model.named_parameters():
        n = stored_numel(param)
        for key in (family.group_of(name), "all"):
            counts[key]["total"] += n
            if param.requires_grad:
                counts[key]["trainable"] += n
    return counts


def no_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, norms and other vectors are not weight-decayed (decay would pull gains/shifts towards 0)."""
    lowered = name.lower()
    return param.ndim < 2 or lowered.endswith(".bias") or "norm" in lowered


def optimizer_groups(model: torch.nn.Module, family: FamilyAdapter, optim: OptimSection) -> list[dict[str, Any]]:
    """Trainable parameters split by (group, decay); language-model groups first so logs show its lr."""
    lrs = {
        "language_model": optim.lr,
        "projector": optim.projector_lr or optim.lr,
        "vision": optim.vision_lr or optim.lr,
    }
    buckets: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            buckets.setdefault((family.group_of(name), no_decay(name, param)), []).append(param)
    order = ("language_model", "projector", "vision")
    groups = []
    for group in order:
        for skip_decay in (False, True):
            params = buckets.get((group, skip_decay))
            if params:
                groups.append(
                    {
                        "params": params,
                        "lr": lrs[group],
                        "name": f"{group}{'/no_decay' * skip_decay}",
                        "weight_decay": 0.0 if skip_decay else optim.weight_decay,
                    }
                )
    if not groups:
        raise VlmkitError("no parameter is trainable: check method, freeze and lora settings")
    return groups


def build_optimizer(model: torch.nn.Module, family: FamilyAdapter, optim: OptimSection) -> torch.optim.Optimizer:
    groups = optimizer_groups(model, family, optim)
    kwargs = dict(lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, weight_decay=optim.weight_decay)
    if optim.name == "adamw_8bit":
        bnb = require_bitsandbytes("optim.name: adamw_8bit")
        return bnb.optim.AdamW8bit(groups, **kwargs)
    return torch.optim.AdamW(groups, **kwargs)


def require_bitsandbytes(what: str):
    try:
        import bitsandbytes
    except ImportError:
        raise ConfigError(f"{what} needs bitsandbytes, which is not installed: pip install 'vlmkit[qlora]'") from None
    return bitsandbytes
