"""A dataset whose media file is missing is said loudly: stats and split warn with the count and first ids, and
train --check fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from test_output_safety import dataset

from vlmkit.data.schema import read_samples


def break_one(root: Path) -> str:
    sample = read_samples(root)[1]
    Path(sample.media("image")[0]).unlink()
    return sample.id


def vlmkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlmkit", *args], capture_output=True, text=True, timeout=300)


def test_stats_and_split_warn_about_missing_media(tmp_path):
    ds = dataset(tmp_path / "ds", [1, 2, 3, 4])
    broken = break_one(ds)
    stats = vlmkit("data", "stats", str(ds), "--tokenizer", "none")
    assert stats.returncode == 0, stats.stderr
    assert f"warning: {ds}: 1 media file(s) missing, in 1 sample(s) (first: {broken})" in stats.stderr
    split = vlmkit("data", "split", str(ds), "--val", "0.25", "--test", "0")
    assert split.returncode == 0, split.stderr
    assert f"1 media file(s) missing (first samples: {broken})" in split.stderr


def test_train_check_fails_on_missing_media(tmp_path, tiny_model):
    ds = dataset(tmp_path / "ds", [1, 2, 3])
    broken = break_one(ds)
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "t",
                "output_dir": str(tmp_path / "run"),
                "model": {"path": str(tiny_model("qwen2_vl"))},
                "data": {"train": str(ds)},
                "method": "lora",
            }
        )
    )
    out = vlmkit("train", str(config), "--check")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"data.train: 1 media file(s) missing, in 1 sample(s) (first: {broken})" in out.stderr
