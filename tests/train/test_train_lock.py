"""One `vlmkit train` writes a run directory at a time: a second one on the same folder (--resume or --overwrite
while the first still trains) is refused before it touches anything, and the folder is free again once the first
has ended, however it ended (the lock goes with the process, kill -9 included)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from train_helpers import base_config, write_config

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}


def _train(config, *extra, wait=True):
    command = [sys.executable, "-m", "vlmkit", "train", str(config), *extra]
    if wait:
        return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_second_train_on_a_running_run_directory_is_refused(tmp_path, image_data, tiny_model):
    run = tmp_path / "run"
    long_run = base_config(
        tiny_model("qwen2_vl"), image_data, run, train={"batch_size": 2, "max_steps": 100_000}, save={"every": 1}
    )
    config = write_config(tmp_path / "run.yaml", long_run)
    first = _train(config, wait=False)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((run / "checkpoints").glob("checkpoint-*")):
            time.sleep(0.1)
        assert list((run / "checkpoints").glob("checkpoint-*")), "the first run never saved a checkpoint"
        before = json.loads((run / "manifest.json").read_text())
        for flag in ("--resume", "--overwrite"):
            second = _train(config, flag)
            assert second.returncode == 2, second.stderr
            assert "another `vlmkit train` is writing to" in second.stderr and str(run) in second.stderr
        assert (run / "manifest.json").exists() and json.loads((run / "manifest.json").read_text())["started"] == (
            before["started"]
        )  # --overwrite cleared nothing
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    short = write_config(tmp_path / "short.yaml", {**long_run, "train": {"batch_size": 2, "max_steps": 2}})
    again = _train(short, "--overwrite")
    assert again.returncode == 0, again.stderr


def test_under_torchrun_every_rank_stops_when_the_run_directory_is_taken(tmp_path, image_data, tiny_model):
    """Rank 0 finds the run directory locked by another train; the other ranks must stop with it instead of waiting
    for rank 0 in their first collective (until the job's timeout)."""
    from pathlib import Path

    from vlmkit.io import exclusive_lock
    from vlmkit.train.runner import LOCK_FILE

    run = tmp_path / "run"
    run.mkdir()
    config = write_config(tmp_path / "run.yaml", base_config(tiny_model("qwen2_vl"), image_data, run))
    worker = Path(__file__).with_name("dist_worker.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(worker)]
    with exclusive_lock(run / LOCK_FILE, "`vlmkit train`"):  # as a train already running there holds it
        job = subprocess.run(
            [*command, str(config)], env={**ENV, "VLMKIT_DIST_TIMEOUT_S": "600"}, capture_output=True, text=True,
            timeout=240,
        )  # fmt: skip
    assert job.returncode != 0
    assert job.stderr.count("another `vlmkit train` is writing to") >= 2, job.stderr[-3000:]  # both ranks
    assert not (run / "manifest.json").exists()
