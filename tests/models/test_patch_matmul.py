"""Patch convolutions as matmuls: same outputs and gradients as the convolution, swapped on the Qwen vision towers
by training's model preparation, and left alone where the input is more than one kernel."""

import pytest
import torch
from torch import nn

from vlmkit.models.patch_matmul import PatchConv3d, patches_as_matmul


@pytest.mark.parametrize("bias", [False, True])
def test_one_patch_conv_equals_its_matmul_in_value_and_gradient(bias):
    torch.manual_seed(0)
    conv = nn.Conv3d(3, 16, kernel_size=(2, 14, 14), stride=(2, 14, 14), bias=bias)
    fast = nn.Conv3d(3, 16, kernel_size=(2, 14, 14), stride=(2, 14, 14), bias=bias)
    fast.load_state_dict(conv.state_dict())
    assert patches_as_matmul(fast) == 1 and type(fast) is PatchConv3d
    x = torch.randn(40, 3, 2, 14, 14)
    expected, got = conv(x), fast(x)
    assert got.shape == expected.shape == (40, 16, 1, 1, 1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    expected.square().sum().backward()
    got.square().sum().backward()
    torch.testing.assert_close(fast.weight.grad, conv.weight.grad, atol=1e-4, rtol=1e-4)
    # an input of several kernels takes the convolution
    wide = torch.randn(2, 3, 4, 28, 28)
    torch.testing.assert_close(fast(wide), conv(wide), atol=1e-5, rtol=1e-5)


def test_only_kernel_equals_stride_convolutions_are_swapped():
    model = nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=14, stride=14),
        nn.Conv2d(8, 8, kernel_size=3, stride=1, padding=1),
        nn.Conv2d(8, 8, kernel_size=2, stride=2, groups=2),
    )
    assert patches_as_matmul(model) == 1
    assert [type(m).__name__ for m in model] == ["PatchConv2d", "Conv2d", "Conv2d"]


def test_training_preparation_swaps_the_qwen_patch_embedding(tiny_model, tmp_path):
    from vlmkit.config import config_from_dict
    from vlmkit.models.loading import load_model
    from vlmkit.train.prepare import load_for_training

    path = tiny_model("qwen2_vl")
    config = config_from_dict({"model": {"path": str(path)}, "data": {"train": str(tmp_path)}})
    loaded = load_for_training(config)
    stock = load_model(path).model
    patch_embed = loaded.model.model.visual.patch_embed
    assert type(patch_embed.proj) is PatchConv3d
    torch.manual_seed(0)
    pixels = torch.randn(8, patch_embed.in_channels * patch_embed.temporal_patch_size * patch_embed.patch_size**2)
    with torch.no_grad():
        torch.testing.assert_close(patch_embed(pixels), stock.model.visual.patch_embed(pixels), atol=1e-5, rtol=1e-5)
