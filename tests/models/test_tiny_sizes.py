"""Tiny checkpoint sizes: every family's language model comes from one shared block (`tiny_text_dims`), the default
checkpoints keep the sizes they had before it was shared, and `--text-hidden` widens the whole model consistently
(head size, M-RoPE sections, the vision side's output), as a vLLM-loadable tiny checkpoint needs."""

import json

import pytest
from typer.testing import CliRunner

from vlmkit.cli import app
from vlmkit.models.registry import FAMILIES, get_family

# The language-model sizes each family's tiny_config wrote out by hand before the block was shared.
BEFORE = dict(
    vocab_size=1024,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
)
BEFORE_MAX_POSITIONS = {"llava": 2048}
IDS = dict(
    image_token_id=1000,
    video_token_id=1001,
    vision_start_token_id=1002,
    vision_end_token_id=1003,
    bos_token_id=1004,
    eos_token_id=1005,
    pad_token_id=1006,
)


def text_sizes(config) -> dict:
    text = config.get_text_config()
    return {key: getattr(text, key) for key in BEFORE}


def head_size(config) -> int:
    text = config.get_text_config()
    return getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads


def vision_output_width(config) -> int:
    """What the vision side hands the language model: the Qwen merger's output or the projector's (text width)."""
    vision = config.vision_config
    if config.model_type == "qwen2_vl":
        return vision.hidden_size
    if hasattr(vision, "out_hidden_size"):
        return vision.out_hidden_size
    return config.get_text_config().hidden_size


@pytest.mark.parametrize("family", list(FAMILIES))
def test_default_tiny_language_model_keeps_its_sizes(family):
    config = get_family(family).tiny_config(1024, IDS)
    expected = {**BEFORE, "max_position_embeddings": BEFORE_MAX_POSITIONS.get(family, 4096)}
    assert text_sizes(config) == expected
    assert head_size(config) == 16


@pytest.mark.parametrize("family", list(FAMILIES))
def test_text_hidden_widens_heads_rope_and_vision_output(family):
    config = get_family(family).tiny_config(1024, IDS, 128)
    sizes = text_sizes(config)
    assert (sizes["hidden_size"], sizes["intermediate_size"], sizes["num_attention_heads"]) == (128, 256, 4)
    assert head_size(config) == 32  # vLLM's CPU attention needs >= 32
    assert vision_output_width(config) == 128
    rope = getattr(config.get_text_config(), "rope_parameters", None) or {}
    if "mrope_section" in rope:  # M-RoPE's t/h/w sections cover half the head
        assert sum(rope["mrope_section"]) == 16


def test_text_hidden_must_split_into_the_heads():
    from vlmkit.models.base import tiny_text_dims

    with pytest.raises(ValueError, match="multiple of 8"):
        tiny_text_dims(1024, 100)


def test_cli_builds_a_wider_checkpoint_that_loads(tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "llava128"
    result = CliRunner().invoke(app, ["models", "tiny", "llava", str(out), "--text-hidden", "128"])
    assert result.exit_code == 0, result.output
    text = json.loads((out / "config.json").read_text())["text_config"]
    assert (text["hidden_size"], text["num_attention_heads"]) == (128, 4)
    model = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
    assert model.lm_head.in_features == 128
    assert model.model.multi_modal_projector.linear_2.out_features == 128


def test_cli_rejects_a_width_the_heads_cannot_split(tmp_path):
    result = CliRunner().invoke(app, ["models", "tiny", "llava", str(tmp_path / "m"), "--text-hidden", "100"])
    assert result.exit_code == 2
    assert "--text-hidden" in result.output
    assert not (tmp_path / "m").exists()
