"""Fixtures for the sweep tests: a tiny model, a small colours dataset and a fast base training config."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import base_config, write_image_dataset  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sweep_base(tmp_path_factory, tiny_model) -> Path:
    """A folder with base.yaml (2 LoRA steps on 8 colour samples, eval loss every step) and its data."""
    root = tmp_path_factory.mktemp("sweep-base")
    data = write_image_dataset(root / "colours")
    config = base_config(
        tiny_model("qwen2_vl"),
        data,
        root / "unused",
        data={"train": str(data), "eval": str(data)},
        train={"batch_size": 4, "max_steps": 2, "seed": 0},
        eval={"every": 1},
    )
    del config["output_dir"]
    (root / "base.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return root


def write_sweep(folder: Path, name: str, **keys) -> Path:
    spec = {
        "base": "base.yaml",
        "space": {"lora.rank": [2, 4]},
        "objective": {"task": "docvqa", "data": "colours", "metric": "anls", "direction": "maximize"},
        "sampler": "grid",
        "worker": {"heartbeat_s": 1, "grace_s": 3},
    }
    spec.update(keys)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path
