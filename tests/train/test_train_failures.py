"""Runs that fail fail cleanly: a full disk, a diverging loss and a dead model each stop with one line, mark the
manifest failed, and leave only complete checkpoints, which --resume can continue from."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from full_disk import run_on_small_disk, run_with_file_size_limit, tmpfs_available
from train_helpers import base_config, write_config

from vlmkit.config import config_from_dict
from vlmkit.train import train
from vlmkit.train.guards import TrainingDiverged

SCRIPT = '''
import resource, signal, sys
from pathlib import Path
import torch
from transformers import TrainerCallback
import vlmkit.train as T

torch.set_num_threads(1)
mode, leave, config = sys.argv[1], int(sys.argv[2]), sys.argv[3]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


class FillDiskAfterFirstSave(TrainerCallback):
    """Something else fills the disk once checkpoint-2 is saved; the next checkpoint does not fit."""

    def on_save(self, args, state, control, **kwargs):
        if state.global_step != 2:
            return
        if mode == "fsize":
            resource.setrlimit(resource.RLIMIT_FSIZE, (leave, leave))
            return
        filler = Path(args.output_dir).parent.parent / "filler"
        with open(filler, "wb") as handle:
            try:
                while True:
                    handle.write(b"x" * 65536)
                    handle.flush()
            except OSError:
                pass
            size = handle.tell()
            handle.truncate(max(0, size - leave))


original = T.train
T.train = lambda cfg, overrides=(), **kw: original(cfg, overrides, callbacks=[FillDiskAfterFirstSave()], **kw)
from vlmkit.cli import main

main(["train", config])
'''


def _config(model, data, out, **sections):
    return base_config(
        model,
        data,
        out,
        **{"train": {"batch_size": 2, "max_steps": 6, "seed": 0}, "save": {"every": 2, "keep_last": None}, **sections},
    )


def test_full_disk_fails_in_one_line_and_resume_skips_incomplete_checkpoints(tiny_model, image_data, tmp_path, caplog):
    # A real small tmpfs where this machine allows a private mount; else a real file-size limit (EFBIG).
    mode = "tmpfs" if tmpfs_available() else "fsize"
    model = tiny_model("qwen2_vl")
    script = tmp_path / "train_full_disk.py"
    script.write_text(SCRIPT)
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    config = write_config(tmp_path / "run.yaml", _config(model, image_data, disk / "run"))
    if mode == "tmpfs":
        argv = [sys.executable, str(script), mode, "65536", str(config)]
        out = run_on_small_disk(argv, disk, "40m", keep=kept)
        run_dir = kept / "run"
    else:
        argv = [sys.executable, str(script), mode, "40000", str(config)]
        out = run_with_file_size_limit(argv, limit=1 << 40)
        run_dir = disk / "run"
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: no space left on the device"), out.stderr[-3000:]
    assert out.stderr.rstrip().endswith(errors[0])  # the progress bar was closed before it

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"].startswith("no space left on the device")
    assert "\n" not in manifest["error"]
    checkpoints = run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2"]  # no half-written checkpoint-4
    for line in (run_dir / "logs" / "metrics.jsonl").read_text().splitlines():
        json.loads(line)

    # An older version's half-written checkpoint (no trainer_state.json, truncated RNG state) is skipped on resume.
    (run_dir / "filler").unlink(missing_ok=True)
    half = checkpoints / "checkpoint-4"
    half.mkdir()
    (half / "adapter_config.json").write_text((checkpoints / "checkpoint-2" / "adapter_config.json").read_text())
    (half / "rng_state.pth").write_bytes((checkpoints / "checkpoint-2" / "rng_state.pth").read_bytes()[:100])
    resumed_config = config_from_dict(_config(model, image_data, run_dir))
    with caplog.at_level(logging.WARNING, logger="vlmkit"):
        result = train(resumed_config, resume=True, progress=False)
    assert result.global_step == 6
    assert f"skipping incomplete checkpoint {half}" in caplog.text
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["resumed_from"].endswith("checkpoint-2")


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny_model, image_data, tmp_path):
    # lr 0 at step 1 (warm-up), then 1e30 without clipping: step 2's update destroys the weights.
    config = _config(
        tiny_model("qwen2_vl"),
        image_data,
        tmp_path / "run",
        optim={"lr": 1e30, "scheduler": "linear", "warmup_steps": 4, "max_grad_norm": None},
        save={"every": 1, "keep_last": None},
    )
    with pytest.raises(TrainingDiverged) as err:
        train(config_from_dict(config), progress=False)
    message = str(err.value)
    assert message.startswith(("loss is ", "gradient norm is "))
    assert "at step 3 (last finite at step 2; lower optim.lr or enable clipping)" in message
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"] == message
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["checkpoint-1"]  # checkpoint-2 holds the weights the huge update broke
    for line in (tmp_path / "run" / "logs" / "metrics.jsonl").read_text().splitlines():
        json.loads(line)  # no NaN written


def test_vanishing_gradients_warn_then_stop(tiny_model, image_data, tmp_path, caplog):
    # lr 1e6 with clipping: one step kills the model, after which the gradient norm is exactly 0.
    config = _config(
        tiny_model("qwen2_vl"),
        image_data,
        tmp_path / "run",
        optim={"lr": 1e6, "scheduler": "constant"},
        train={"batch_size": 2, "max_steps": 12, "seed": 0, "stall_steps": 5},
    )
    with caplog.at_level(logging.WARNING, logger="vlmkit"), pytest.raises(TrainingDiverged) as err:
        train(config_from_dict(config), progress=False)
    assert "the model has stopped learning" in caplog.text
    assert str(err.value).startswith("training stalled: gradient norm is 0.0 for 5 logged steps")
    manifest = json.loads((Path(tmp_path) / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"].startswith("training stalled")
