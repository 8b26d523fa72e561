"""Data-parallel eval under `accelerate launch` on the CPU. accelerate's `--cpu` flag always takes its one-process
launcher (several CPU processes there mean MPI), so `--multi_gpu --num_processes 2` is what starts 2 processes
through torchrun on a machine without GPUs; both are checked here, the second as the pitfall the docs warn about."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from eval_helpers import make_sample, write_dataset

WORKER = Path(__file__).with_name("dp_worker.py")
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no"]
ACCELERATE += ["--dynamo_backend", "no", "--main_process_port", "0"]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "VLMKIT_DIST_TIMEOUT_S": "60"}


def _data(tmp_path: Path, n: int = 16) -> Path:
    return write_dataset(tmp_path / "data", [make_sample(i, image=False) for i in range(n)])


def test_multi_gpu_flag_runs_two_cpu_processes_that_both_predict(tmp_path):
    data, out = _data(tmp_path), tmp_path / "run"
    cmd = [*ACCELERATE, "--multi_gpu", "--num_processes", "2", str(WORKER), str(data), str(out), "--delay", "0.3"]
    with open(tmp_path / "stdout", "w") as stdout_file, open(tmp_path / "stderr", "w") as stderr_file:
        job = subprocess.Popen(cmd, env=_env(), stdout=stdout_file, stderr=stderr_file)
        seen: set[str] = set()
        deadline = time.time() + 300
        while job.poll() is None and time.time() < deadline:  # the part files, while they exist, show who predicts
            seen |= {p.name for p in out.glob("predictions.part-*.jsonl") if p.stat().st_size > 0}
            time.sleep(0.05)
        job.wait(timeout=60)
    stdout, stderr = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    assert job.returncode == 0, stderr[-3000:]
    assert seen == {"predictions.part-0-of-2.jsonl", "predictions.part-1-of-2.jsonl"}
    assert stdout.count("scored 16") == 1  # rank 0 alone scores
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["status"] == "complete"
    ids = [json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert ids == [f"s{i:04d}" for i in range(16)]


def test_cpu_flag_silently_runs_one_process(tmp_path):
    """The pitfall: `accelerate launch --cpu --num_processes 2` starts one process (no RANK / WORLD_SIZE set)."""
    data, out = _data(tmp_path, n=4), tmp_path / "run"
    cmd = [*ACCELERATE, "--cpu", "--num_processes", "2", str(WORKER), str(data), str(out)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("scored 4") == 1
    assert json.loads((out / "manifest.json").read_text())["world_size"] == 1
