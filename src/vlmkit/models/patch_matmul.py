"""Patch embeddings as one matmul: a convolution whose input is exactly one kernel (kernel size = stride, no padding)
computes a linear map of the flattened patch, and torch's conv kernels are several times slower than the equal matmul.

The Qwen families embed vision patches that way (a Conv3d of kernel (2, 14, 14) applied to inputs already cut into
single patches); at hidden 512 on one CPU thread the conv was 7 % of a LoRA training step and ran 5x slower than the
matmul. vLLM makes the same substitution for these models. `patches_as_matmul(model)` swaps the class of every such
convolution for a subclass whose forward takes the matmul path when the input is one kernel and the plain
convolution otherwise; the parameters (and so checkpoints, adapters and optimiser state) are unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _OnePatchMatmul:
    """Mixin for Conv2d / Conv3d: the one-kernel input as `x.flatten(1) @ weight.flatten(1).T + bias`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != tuple(self.kernel_size):
            return super().forward(x)  # type: ignore[misc]
        out = F.linear(x.reshape(x.shape[0], -1), self.weight.reshape(self.out_channels, -1), self.bias)
        return out.reshape(x.shape[0], self.out_channels, *([1] * len(self.kernel_size)))


class PatchConv2d(_OnePatchMatmul, nn.Conv2d):
    pass


class PatchConv3d(_OnePatchMatmul, nn.Conv3d):
    pass


_SWAPS: dict[type, type] = {nn.Conv2d: PatchConv2d, nn.Conv3d: PatchConv3d}


def _is_patch_conv(module: nn.Module) -> bool:
    return (
        tuple(module.kernel_size) == tuple(module.stride)
        and all(p == 0 for p in module.padding)
        and all(d == 1 for d in module.dilation)
        and module.groups == 1
        and module.padding_mode == "zeros"
    )


def patches_as_matmul(model: Any) -> int:
    """Swap every plain Conv2d / Conv3d with kernel size = stride (no padding, dilation or groups) for its matmul
    subclass; returns how many were swapped."""
    swapped = 0
    for module in model.modules():
        target = _SWAPS.get(type(module))
        if target is not None and _is_patch_conv(module):
            module.__class__ = target
            swapped += 1
    return swapped
