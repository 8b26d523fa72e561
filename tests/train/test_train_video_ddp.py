"""Video samples train on the Qwen families; the same command runs as 2 processes under torchrun (gloo, CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import base_config, write_config
from transformers import TrainerCallback

from vlmkit.config import config_from_dict
from vlmkit.train import train


class VideoBatches(TrainerCallback):
    """Counts training batches that carried video pixels (the batch reaches callbacks only via the model)."""

    def __init__(self):
        self.videos = 0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def hook(module, args, kwargs):
            self.videos += int(kwargs.get("pixel_values_videos") is not None)

        model.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_video_samples_train_on_qwen_families(family, tiny_model, video_data, tmp_path):
    counter = VideoBatches()
    config = config_from_dict(
        base_config(
            tiny_model(family),
            video_data,
            tmp_path / "run",
            data={"nframes": 4},
            optim={"lr": 2e-2},
            train={"batch_size": 2, "max_steps": 4},
        )
    )
    result = train(config, callbacks=[counter])
    assert counter.videos == 4
    losses = result.losses()
    assert len(losses) == 4 and losses[-1] < losses[0]


def test_torchrun_two_processes_on_cpu(tiny_model, image_data, tmp_path):
    config = write_config(
        tmp_path / "ddp.yaml",
        base_config(tiny_model("qwen2_vl"), image_data, tmp_path / "run", train={"batch_size": 2, "max_steps": 2}),
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "vlmkit",
            "train",
            str(config),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Path(tmp_path / "run")
    ranks = [json.loads((run / "logs" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert all(r["micro_batches"] == 2 and r["global_step"] == 2 for r in ranks)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["status"] == "finished"
    assert (run / "adapter" / "adapter_model.safetensors").exists()
    history = json.loads((run / "log_history.json").read_text())
    assert [row["step"] for row in history if "loss" in row] == [1, 2]
    assert proc.stdout.count("done: 2 steps") == 1  # only rank 0 reports
