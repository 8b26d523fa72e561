"""An interrupted and resumed run ends with the same weights and loss curve as an uninterrupted one (CPU)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file
from train_helpers import base_config
from transformers import TrainerCallback

from vlmkit.config import config_from_dict
from vlmkit.errors import ConfigError
from vlmkit.train import train


class StopAfter(TrainerCallback):
    """Ends training after `step` optimiser steps, like a killed job (later checkpoints never happen)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def _config(model, data, out, max_steps=8):
    # 8 samples, batch 2: 4 steps per epoch. Resuming from checkpoint-6 lands mid-way through the second epoch,
    # whose sample order must not depend on what the first epoch did to the global RNG. Dropout and length
    # grouping exercise the restored RNG state and the per-epoch order.
    return config_from_dict(
        base_config(
            model,
            data,
            out,
            lora={"rank": 4, "alpha": 8, "dropout": 0.1},
            optim={"lr": 5e-3, "scheduler": "cosine", "warmup_steps": 2},
            train={"batch_size": 2, "max_steps": max_steps, "seed": 3},
            save={"every": 3, "keep_last": 2},
        )
    )


def test_resume_matches_uninterrupted_run(tiny_model, image_data, tmp_path):
    model = tiny_model("qwen2_vl")
    straight = train(_config(model, image_data, tmp_path / "straight"))

    interrupted_dir = tmp_path / "interrupted"
    first = train(_config(model, image_data, interrupted_dir), callbacks=[StopAfter(7)])
    assert first.global_step == 7
    assert sorted(p.name for p in (interrupted_dir / "checkpoints").iterdir()) == ["checkpoint-3", "checkpoint-6"]
    resumed = train(_config(model, image_data, interrupted_dir), resume=True)

    assert resumed.global_step == straight.global_step == 8
    assert resumed.losses() == straight.losses()  # the log history continues from the checkpoint
    # logs/metrics.jsonl holds each step once: step 7, logged before the kill, is not kept twice
    records = [json.loads(line) for line in (interrupted_dir / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 9))
    a = load_file(straight.adapter_dir / "adapter_model.safetensors")
    b = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_resume_needs_a_checkpoint_and_a_fresh_run_needs_a_fresh_dir(tiny_model, image_data, tmp_path):
    model = tiny_model("qwen2_vl")
    with pytest.raises(ConfigError, match="no checkpoint to resume"):
        train(_config(model, image_data, tmp_path / "new"), resume=True)
    done = train(_config(model, image_data, tmp_path / "done", max_steps=2))
    with pytest.raises(ConfigError, match="already holds a run"):
        train(_config(model, image_data, done.run_dir, max_steps=2))


def test_overwrite_starts_the_run_again_and_keeps_other_files(tiny_model, image_data, tmp_path):
    model = tiny_model("qwen2_vl")
    done = train(_config(model, image_data, tmp_path / "run", max_steps=3))
    (done.run_dir / "checkpoints" / "checkpoint-99").mkdir()  # a stale checkpoint a resume would otherwise pick
    (done.run_dir / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match="pick one"):
        train(_config(model, image_data, done.run_dir, max_steps=2), resume=True, overwrite=True)
    again = train(_config(model, image_data, done.run_dir, max_steps=2), overwrite=True)
    assert again.global_step == 2 and again.adapter_dir.is_dir()
    assert not (done.run_dir / "checkpoints" / "checkpoint-99").exists()
    assert max(row["step"] for row in again.log_history) == 2  # no steps of the old run survive
    assert (done.run_dir / "notes.txt").read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize("where", ["data", "parent", "inside"])
def test_run_directory_may_not_hold_or_sit_in_an_input(tiny_model, image_data, tmp_path, where):
    """--overwrite there would delete the training data (or the base model); refused before anything loads."""
    import shutil

    from vlmkit.train.preflight import preflight

    data = shutil.copytree(image_data, tmp_path / "runs" / "data")
    out = {"data": data, "parent": tmp_path / "runs", "inside": data / "run"}[where]
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=r"an input of this command.*choose another"):
            preflight(_config(tiny_model("qwen2_vl"), data, out), overwrite=overwrite)
    assert (data / "samples.jsonl").is_file()
