"""`vlmkit infer --data` over 2 CPU processes (torchrun, gloo), the scheme `vlmkit eval` uses (vlmkit.distributed):
the same predictions as one process, merged into the --out file in dataset order by rank 0, the whole job counted
once; a job killed with SIGKILL mid-run finished by one process with every sample exactly once; a hung rank fails
the job with a clear message; a remote engine is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from infer_helpers import write_dataset
from torchrun_jobs import kill_job

WORKER = Path(__file__).with_name("dp_infer_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]


def _env(**extra: str) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "VLMKIT_DIST_TIMEOUT_S": "60", "HF_HUB_OFFLINE": "1", **extra}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _without_latency(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "latency_s"} for row in rows]


def test_part_files_are_named_after_the_predictions_file(tmp_path):
    from vlmkit.distributed import World, part_files, part_path

    out = tmp_path / "run[1].jsonl"  # glob characters in the name are taken literally
    assert part_path(out, World(rank=1, size=3)).name == "run[1].part-1-of-3.jsonl"
    for name in ("run[1].part-0-of-2.jsonl", "run[1].part-1-of-3.jsonl", "run1.part-0-of-2.jsonl"):
        (tmp_path / name).write_text("")
    (tmp_path / "run[1].jsonl.manifest.json").write_text("{}")
    (tmp_path / "run[1].part-x-of-2.jsonl").write_text("")
    assert [p.name for p in part_files(out)] == ["run[1].part-0-of-2.jsonl", "run[1].part-1-of-3.jsonl"]
    assert part_files(tmp_path / "missing" / "preds.jsonl") == []


def test_world_from_torchrun_or_mpi_variables(monkeypatch):
    from vlmkit.distributed import current_world, job_group
    from vlmkit.errors import VlmkitError

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert (current_world().rank, current_world().size) == (0, 1)
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")  # what mpirun sets (accelerate's multi-CPU launch)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")
    assert current_world() == current_world().__class__(rank=1, size=2, local_rank=1)
    monkeypatch.setenv("RANK", "0")  # torchrun's win
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert (current_world().rank, current_world().size) == (0, 4)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(VlmkitError, match="WORLD_SIZE must be an integer"):
        current_world()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(VlmkitError, match="MASTER_ADDR and MASTER_PORT not set"):  # before any collective hangs
        job_group(current_world())


def _infer_cli(nproc: int, model: Path, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = ["-m", "vlmkit", "infer", "--model", str(model), "--data", str(data), "--out", str(out)]
    args += ["--max-new-tokens", "4", "--batch-size", "3", "--no-progress", *extra]
    return subprocess.run(
        [*TORCHRUN, str(nproc), *args], env=_env(NO_COLOR="1"), capture_output=True, text=True, timeout=600
    )


def test_infer_cli_under_torchrun_matches_one_process(tiny_model, images, tmp_path):
    data = write_dataset(tmp_path / "data", images, n=11, bad_ids={"q4"})
    model = tiny_model("qwen2_vl")
    one = _infer_cli(1, model, data, tmp_path / "one.jsonl")
    two = _infer_cli(2, model, data, tmp_path / "two.jsonl")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    ids = [f"q{k}" for k in range(11)]
    rows = _rows(tmp_path / "two.jsonl")
    assert [r["id"] for r in rows] == ids  # merged once, in dataset order
    by_id = {r["id"]: r for r in _without_latency(_rows(tmp_path / "one.jsonl"))}
    assert _without_latency(rows) == [by_id[i] for i in ids]  # greedy: what one process predicts
    assert "file not found" in rows[4]["error"]
    assert not list(tmp_path.glob("two.part-*"))
    # rank 0 reports the whole job once: both ranks' predictions and the failure
    assert two.stderr.count("10 predicted") == 1 and "1 failed" in two.stderr
    manifest = json.loads((tmp_path / "two.jsonl.manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["status"] == "done"
    assert manifest["counts"] == {"selected": 11, "already_done": 0, "predicted": 10, "errors": 1}
    assert 0 <= manifest["merge_s"] <= manifest["elapsed_s"]
    again = _infer_cli(2, model, data, tmp_path / "two.jsonl")
    assert again.returncode == 0 and again.stderr.count("nothing to do") == 1


def test_infer_cli_under_accelerate_launch_runs_two_processes(tiny_model, images, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` starts 2 processes on a CPU-only machine (`--cpu` would
    start one); the manifest records the job's world size."""
    data = write_dataset(tmp_path / "data", images, n=6)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    args = ["-m", "vlmkit", "infer", "--model", str(tiny_model("qwen2_vl")), "--data", str(data)]
    args += ["--out", str(tmp_path / "preds.jsonl"), "--max-new-tokens", "3", "--no-progress"]
    proc = subprocess.run([*launch, *args], env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("6 predicted") == 1
    assert [r["id"] for r in _rows(tmp_path / "preds.jsonl")] == [f"q{k}" for k in range(6)]
    manifest = json.loads((tmp_path / "preds.jsonl.manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["counts"]["predicted"] == 6


def test_remote_engine_is_refused_under_torchrun(tiny_model, images, tmp_path):
    data = write_dataset(tmp_path / "data", images, n=2)
    proc = _infer_cli(
        2,
        tiny_model("qwen2_vl"),
        data,
        tmp_path / "out.jsonl",
        "--engine",
        "openai",
        "--base-url",
        "http://127.0.0.1:9/v1",
    )
    assert proc.returncode != 0
    # each rank exits 2 with the one-line error (the traceback after it is torchrun's own report)
    assert "error: --engine openai runs no model in this process" in proc.stderr
    assert "raise --concurrency" in proc.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_one_question_is_refused_under_torchrun(tiny_model, images, tmp_path):
    proc = subprocess.run(
        [*TORCHRUN, "2", "-m", "vlmkit", "infer", "--model", str(tiny_model("qwen2_vl")), "--image", str(images[0])]
        + ["--question", "What colour?"],
        env=_env(NO_COLOR="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "error: one --question runs in one process" in proc.stderr


def _worker(nproc: int, model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [*TORCHRUN, str(nproc), str(WORKER), str(model), str(data), str(out), *extra]


def test_sigkill_mid_run_then_one_process_finishes_exactly_once(tiny_model, images, tmp_path):
    data, model = write_dataset(tmp_path / "data", images, n=16), tiny_model("qwen2_vl")
    out = tmp_path / "run" / "preds.jsonl"
    out.parent.mkdir()
    job = subprocess.Popen(
        _worker(2, model, data, out, "--delay", "0.5"),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline:  # kill once both ranks have written part of their share
        parts = list(out.parent.glob("preds.part-*-of-2.jsonl"))
        if len(parts) == 2 and all(p.stat().st_size > 0 for p in parts):
            break
        time.sleep(0.1)
    kill_job(job, str(out.parent))  # the launcher and both ranks at once
    assert len(list(out.parent.glob("preds.part-*-of-2.jsonl"))) == 2
    resumed = subprocess.run(_worker(1, model, data, out), env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = _rows(out)
    ids = [r["id"] for r in rows]  # the merged parts in dataset order, then what one process added (batch order)
    assert len(ids) == 16 and set(ids) == {f"q{k}" for k in range(16)}  # every sample exactly once
    assert not list(out.parent.glob("preds.part-*"))
    fresh = subprocess.run(
        _worker(1, model, data, tmp_path / "fresh.jsonl"), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    by_id = {r["id"]: r for r in _without_latency(_rows(tmp_path / "fresh.jsonl"))}
    assert _without_latency(rows) == [by_id[r["id"]] for r in rows]


def test_a_hung_rank_fails_the_job_with_a_clear_message(tiny_model, images, tmp_path):
    data = write_dataset(tmp_path / "data", images, n=4)
    proc = subprocess.run(
        _worker(2, tiny_model("qwen2_vl"), data, tmp_path / "preds.jsonl", "--hang-rank", "1"),
        env=_env(VLMKIT_DIST_TIMEOUT_S="10"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "another process of the job died or stopped answering" in proc.stderr
    assert "rerun the same command" in proc.stderr
    manifest = json.loads((tmp_path / "preds.jsonl.manifest.json").read_text())
    assert manifest["status"] == "interrupted"
