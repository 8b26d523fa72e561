"""The shipped DeepSpeed configs (configs/deepspeed/) pass transformers' own DeepSpeed config handling with a run's
TrainingArguments (every "auto" resolved, nothing contradicting the Trainer) and `vlmkit train --check`.

Runs on 2 CPU processes are in test_train_deepspeed_runs.py (opt-in, slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_helpers import base_config, write_config

from vlmkit.cli import main
from vlmkit.config import config_from_dict
from vlmkit.train.trainer import training_arguments

pytest.importorskip("deepspeed")

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "deepspeed"
SHIPPED = {"zero2.json": (2, False), "zero3.json": (3, False), "zero3_offload.json": (3, True)}


def test_every_shipped_config_is_tested():
    assert sorted(p.name for p in CONFIGS.glob("*.json")) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_transformers_resolves_the_config(name, tiny_model, image_data, tmp_path):
    from transformers import AutoConfig
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    stage, offload = SHIPPED[name]
    model = tiny_model("qwen2_vl")
    config = config_from_dict(
        base_config(model, image_data, tmp_path / "run", train={"batch_size": 2, "grad_accum": 3, "max_steps": 5})
    )
    args = training_arguments(config, tmp_path / "run", has_eval=False)
    ds = HfTrainerDeepSpeedConfig(str(CONFIGS / name))
    ds.trainer_config_process(args)

    class Model:  # what trainer_config_finalize reads: the text model's hidden size
        config = AutoConfig.from_pretrained(model).get_text_config()

    ds.trainer_config_finalize(args, Model(), num_training_steps=5)
    resolved = ds.config
    assert "auto" not in json.dumps(resolved)
    assert ds.get_value("zero_optimization.stage") == stage and ds.is_offload() == offload
    assert resolved["train_micro_batch_size_per_gpu"] == 2 and resolved["gradient_accumulation_steps"] == 3
    assert resolved["gradient_clipping"] == config.optim.max_grad_norm
    if stage == 3:  # saving writes gathered 16-bit weights, not shards that need zero_to_fp32.py
        assert ds.get_value("zero_optimization.stage3_gather_16bit_weights_on_model_save") is True


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_train_check_accepts_the_config(name, tiny_model, image_data, tmp_path, capsys):
    config = write_config(
        tmp_path / "run.yaml",
        base_config(
            tiny_model("qwen2_vl"), image_data, tmp_path / "run", distributed={"deepspeed": str(CONFIGS / name)}
        ),
    )
    main(["train", str(config), "--check"])
    assert capsys.readouterr().out.startswith("ok:")


def test_a_missing_deepspeed_config_is_named(tiny_model, image_data, tmp_path, capsys):
    config = write_config(
        tmp_path / "run.yaml",
        base_config(tiny_model("qwen2_vl"), image_data, tmp_path / "run", distributed={"deepspeed": "nope.json"}),
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(config), "--check"])
    assert exit_info.value.code == 2 and "nope.json does not exist" in capsys.readouterr().err
