"""What trains is what the config says: LoRA targets, freezing per group, modules_to_save, optimiser groups."""

from __future__ import annotations

import pytest
import torch
from train_helpers import base_config
from transformers import TrainerCallback

from vlmkit.config import config_from_dict
from vlmkit.errors import ConfigError
from vlmkit.models.loading import load_model
from vlmkit.train import train
from vlmkit.train.params import count_parameters, optimizer_groups
from vlmkit.train.prepare import make_trainable


def _prepare(tiny_model, family, **sections):
    config = config_from_dict(base_config(tiny_model(family), "unused", "unused", **sections))
    loaded = load_model(config.model.path)
    model = make_trainable(config, loaded.model, loaded.family)
    return config, model, loaded.family


def _trainable(model):
    return [n for n, p in model.named_parameters() if p.requires_grad]


def test_default_targets_are_attention_and_mlp_of_the_language_model_only(tiny_model):
    _, model, family = _prepare(tiny_model, "qwen2_5_vl")  # its vision MLP also has gate/up/down_proj
    names = _trainable(model)
    leaves = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}
    assert leaves == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert all(family.group_of(n) == "language_model" for n in names)


def test_explicit_targets_all_linear_and_unknown_names(tiny_model):
    _, model, _ = _prepare(tiny_model, "qwen2_vl", lora={"targets": ["q_proj", "v_proj"]})
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in _trainable(model)} == {"q_proj", "v_proj"}
    _, model, family = _prepare(tiny_model, "smolvlm", lora={"targets": "all-linear"})
    counts = count_parameters(model, family)
    assert counts["vision"]["trainable"] == counts["projector"]["trainable"] == 0
    assert not any("lm_head" in n for n in _trainable(model))
    with pytest.raises(ConfigError, match=r"lora\.targets: no linear layer named 'qkv_proj' .* q_proj"):
        _prepare(tiny_model, "llava", lora={"targets": ["qkv_proj"]})


def test_targets_extra_puts_lora_on_lm_head_and_embeddings(tiny_model):
    _, model, _ = _prepare(tiny_model, "qwen2_vl", lora={"targets_extra": ["lm_head", "embed_tokens"]})
    names = _trainable(model)
    assert any(n.startswith("base_model.model.lm_head.lora_") for n in names)
    assert any("embed_tokens.lora_embedding_" in n for n in names)
    with pytest.raises(ConfigError, match=r"lora\.targets_extra: no module named 'lm_haed'"):
        _prepare(tiny_model, "qwen2_vl", lora={"targets_extra": ["lm_haed"]})


def test_unfrozen_projector_trains_fully_and_vision_lora_spares_it(tiny_model):
    _, model, family = _prepare(tiny_model, "qwen3_vl", freeze={"projector": False})
    counts = count_parameters(model, family)
    merger = sum(
        p.numel() for n, p in model.named_parameters() if family.group_of(n) == "projector" and "modules_to_save" in n
    )
    assert counts["projector"]["trainable"] == merger > 0 and counts["vision"]["trainable"] == 0

    # Qwen3-VL's merger and vision MLP share the leaf names linear_fc1/linear_fc2: only the tower gets LoRA
    _, model, family = _prepare(tiny_model, "qwen3_vl", lora={"vision": True})
    counts = count_parameters(model, family)
    assert counts["vision"]["trainable"] > 0 and counts["projector"]["trainable"] == 0
    assert all("lora_" in n for n in _trainable(model))


def test_unfrozen_vision_tower_without_its_merger(tiny_model):
    _, model, family = _prepare(tiny_model, "qwen2_vl", freeze={"vision": False})
    counts = count_parameters(model, family)
    vision_total = sum(
        p.numel()
        for n, p in load_model(tiny_model("qwen2_vl")).model.named_parameters()
        if family.group_of(n) == "vision"
    )
    assert counts["vision"]["trainable"] == vision_total and counts["projector"]["trainable"] == 0


def test_full_method_follows_freeze_and_groups_get_their_learning_rates(tiny_model):
    config, model, family = _prepare(
        tiny_model,
        "llava",
        method="full",
        freeze={"vision": False},
        optim={"lr": 1e-4, "vision_lr": 1e-5, "projector_lr": 5e-5, "weight_decay": 0.1},
    )
    counts = count_parameters(model, family)
    assert all(counts[g]["trainable"] == counts[g]["total"] > 0 for g in ("vision", "projector", "language_model"))
    groups = {g["name"]: g for g in optimizer_groups(model, family, config.optim)}
    assert groups["language_model"]["lr"] == 1e-4 and groups["vision"]["lr"] == 1e-5
    assert groups["projector"]["lr"] == 5e-5
    assert groups["language_model/no_decay"]["weight_decay"] == 0.0 and groups["language_model"]["weight_decay"] == 0.1
    assert all(p.ndim == 1 for p in groups["vision/no_decay"]["params"])
    assert list(groups)[0] == "language_model"  # the logged learning rate is the language model's

    config, model, family = _prepare(tiny_model, "llava", method="full", freeze={"language_model": True})
    counts = count_parameters(model, family)
    assert counts["language_model"]["trainable"] == counts["vision"]["trainable"] == 0
    assert counts["projector"]["trainable"] == counts["projector"]["total"]


def test_full_finetune_from_scratch_with_trainable_vision(tiny_model, image_data, tmp_path):
    """The quickstart's case: a tiny Qwen2-VL trained fully, vision tower included; every group moves."""
    base = tiny_model("qwen2_vl")
    before = load_model(base).model.state_dict()
    config = config_from_dict(
        base_config(
            base,
            image_data,
            tmp_path / "run",
            method="full",
            freeze={"vision": False},
            optim={"lr": 1e-3, "vision_lr": 2e-4},
            train={"batch_size": 4, "max_steps": 8},
        )
    )
    seen = {}

    class Groups(TrainerCallback):
        def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
            seen.update({g["name"]: g["lr"] for g in optimizer.param_groups})

    result = train(config, callbacks=[Groups()])
    assert seen == {
        "language_model": 1e-3,
        "language_model/no_decay": 1e-3,
        "projector": 1e-3,
        "projector/no_decay": 1e-3,
        "vision": 2e-4,
        "vision/no_decay": 2e-4,
    }  # scheduler: constant
    assert result.model_dir is not None and (result.model_dir / "config.json").exists()
    after = load_model(result.model_dir).model.state_dict()
    family = load_model(base).family
    for group in ("vision", "projector", "language_model"):
        keys = [k for k in before if family.group_of(k) == group]
        assert any(not torch.equal(before[k], after[k]) for k in keys), group
    assert result.losses()[-1] < result.losses()[0]
