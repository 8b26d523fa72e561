"""Every config in configs/ validates, and runs two steps with its family's tiny checkpoint swapped in."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlmkit.config import load_config
from vlmkit.data.schema import read_samples
from vlmkit.train import train

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_the_seed_systems_have_configs():
    names = {p.stem for p in CONFIGS}
    assert {
        "vivqa_qwen3vl8b_lora",
        "docvqa_qwen2vl_lora",
        "vizwiz_llava_lora",
        "video_qwen2vl7b_lora",
        "textvqa_qwen25vl_qlora",
    } <= names


def test_vivqa_config_has_the_published_recipe():
    config = load_config(next(p for p in CONFIGS if p.stem == "vivqa_qwen3vl8b_lora"))
    assert (config.lora.rank, config.lora.alpha, config.lora.dropout, config.lora.targets) == (
        128,
        256,
        0.05,
        "all-linear",
    )
    assert (config.optim.lr, config.optim.vision_lr, config.train.epochs) == (2e-5, 2e-6, 3)
    assert (config.train.batch_size, config.train.grad_accum, config.train.precision) == (2, 8, "bf16")
    assert config.train.gradient_checkpointing and config.freeze.vision


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_seed_config_runs_two_steps_on_tiny_model(path, tiny_model, image_data, video_data, tmp_path):
    config = load_config(path)
    assert config.model.family, "seed configs name their family so the checkpoint is checked against it"
    assert Path(config.data.train).is_absolute()  # resolved against the config file's folder
    data = video_data if (config.data.fps or config.data.nframes) else image_data
    run = train(
        path,
        [
            f"model.path={tiny_model(config.model.family)}",
            f"data.train={data}",
            "data.eval=null",
            "eval.every=null",
            "data.min_pixels=null",
            "data.max_pixels=null",
            "train.max_steps=2",
            # two accumulation micro-steps still exercise accumulation, at a fraction of the time
            f"train.grad_accum={min(config.train.grad_accum, 2)}",
        ],
        out=tmp_path / "run",
    )
    assert run.global_step == 2
    assert all(loss == loss for loss in run.losses())  # finite, not NaN
    assert (run.final_dir / ("adapter_config.json" if config.method != "full" else "config.json")).exists()
    assert len(read_samples(data)) >= 4
    assert list((run.run_dir / "logs" / "tensorboard").glob("events.out.tfevents.*"))  # the default tracker
