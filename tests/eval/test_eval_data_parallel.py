"""Data-parallel eval over 2 CPU processes (torchrun, gloo): the same predictions as one process, scored once by
rank 0, and a job killed with SIGKILL mid-run finished by one process with every sample exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from eval_helpers import make_sample, write_dataset
from torchrun_jobs import kill_job

from vlmkit.distributed import fold_parts, shard

WORKER = Path(__file__).with_name("dp_worker.py")


def _command(nproc: int, data: Path, out: Path, *extra: str) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    return [*launcher, str(WORKER), str(data), str(out), *extra]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "VLMKIT_DIST_TIMEOUT_S": "60"}


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def _data(tmp_path: Path, n: int = 24) -> Path:
    return write_dataset(tmp_path / "data", [make_sample(i, image=False) for i in range(n)])


def test_shares_are_disjoint_complete_and_balanced():
    sizes = [5, 1, 1, 1, 1, 1, 4, 3, 2, 2]
    shares = shard(sizes, 3)
    assert sorted(i for share in shares for i in share) == list(range(len(sizes)))
    loads = [sum(sizes[i] for i in share) for share in shares]
    assert max(loads) - min(loads) <= max(sizes) and all(share == sorted(share) for share in shares)


def test_two_processes_match_one(tmp_path):
    data = _data(tmp_path)
    one = subprocess.run(_command(1, data, tmp_path / "one"), env=_env(), capture_output=True, text=True, timeout=300)
    two = subprocess.run(_command(2, data, tmp_path / "two"), env=_env(), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("scored 24") == 1  # rank 0 alone scores and reports
    strip = [{k: v for k, v in r.items() if k != "latency_s"} for r in _rows(tmp_path / "one")]
    assert [{k: v for k, v in r.items() if k != "latency_s"} for r in _rows(tmp_path / "two")] == strip
    assert not list((tmp_path / "two").glob("predictions.part-*"))
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["status"] == "complete"
    scores = json.loads((tmp_path / "two" / "scores.json").read_text())
    assert scores["counts"]["predictions"] == 24
    timing = scores["timing"]  # rank 0's merge and scoring, apart from the model's time
    assert timing["merge_s"] > 0 and timing["score_s"] > 0
    assert timing["model_s"] + timing["merge_s"] + timing["score_s"] <= timing["wall_s"]
    assert json.loads((tmp_path / "one" / "scores.json").read_text())["timing"]["merge_s"] == 0


def test_sigkill_mid_run_then_one_process_finishes_exactly_once(tmp_path):
    data, out = _data(tmp_path), tmp_path / "run"
    job = subprocess.Popen(
        _command(2, data, out, "--delay", "0.5"),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once both ranks have written part of their share
        parts = list(out.glob("predictions.part-*.jsonl"))
        if len(parts) == 2 and all(p.stat().st_size > 0 for p in parts):
            break
        time.sleep(0.1)
    kill_job(job, str(out))  # the launcher and both ranks at once
    assert list(out.glob("predictions.part-*.jsonl"))
    resumed = subprocess.run(_command(1, data, out), env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ids = [r["id"] for r in _rows(out)]
    assert ids == [f"s{i:04d}" for i in range(24)]  # each once, in dataset order
    assert not list(out.glob("predictions.part-*"))


def test_fold_parts_survives_a_torn_line_and_duplicates(tmp_path):
    (tmp_path / "predictions.jsonl").write_text('{"id": "b", "prediction": "1"}\n')
    (tmp_path / "predictions.part-0-of-2.jsonl").write_text('{"id": "a", "prediction": "0"}\n{"id": "b", "predi')
    (tmp_path / "predictions.part-1-of-2.jsonl").write_text(
        '{"id": "c", "prediction": "2"}\n{"id": "b", "prediction": "9"}\n'
    )
    assert fold_parts(tmp_path / "predictions.jsonl", {"a": 0, "b": 1, "c": 2}) == 3
    rows = _rows(tmp_path)
    assert [(r["id"], r["prediction"]) for r in rows] == [("a", "0"), ("b", "1"), ("c", "2")]


def _eval_cli(nproc: int, model: Path, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    args = ["-m", "vlmkit", "eval", "--model", str(model), "--out", str(out), "--max-new-tokens", "3"]
    args += ["--task", "docvqa", "--data", str(data), "--task", "chartqa", "--data", str(data), *extra]
    env = {**_env(), "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    return subprocess.run([*launcher, *args], env=env, capture_output=True, text=True, timeout=600)


def test_eval_cli_under_torchrun_matches_one_process(tiny_model, tmp_path):
    """Greedy tiny model, two --task/--data pairs: 2 processes predict exactly what 1 does; rank 0 reports once."""
    from synthetic_media import make_image

    data = tmp_path / "docs"
    (data / "media").mkdir(parents=True)
    samples = []
    for i in range(6):
        make_image(seed=i).save(data / "media" / f"{i}.png")
        content = [{"type": "image", "image": f"media/{i}.png"}, {"type": "text", "text": f"What is in box {i}?"}]
        samples.append({"id": f"d{i}", "messages": [{"role": "user", "content": content}], "answers": [f"box {i}"]})
    (data / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    model = tiny_model("qwen2_vl")
    one = _eval_cli(1, model, data, tmp_path / "one")
    two = _eval_cli(2, model, data, tmp_path / "two")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("summary:") == 1
    for task in ("docvqa", "chartqa"):
        a = [(r["id"], r["prediction"]) for r in _rows(tmp_path / "one" / task)]
        b = [(r["id"], r["prediction"]) for r in _rows(tmp_path / "two" / task)]
        assert a == b and len(a) == 6
        assert json.loads((tmp_path / "two" / task / "manifest.json").read_text())["world_size"] == 2


def test_remote_engine_is_refused_under_torchrun(tiny_model, tmp_path):
    data = _data(tmp_path, n=2)
    proc = _eval_cli(
        2, tiny_model("qwen2_vl"), data, tmp_path / "out", "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1"
    )
    assert proc.returncode != 0
    assert "raise --concurrency" in proc.stderr


def test_a_hung_rank_fails_the_job_with_a_clear_message(tmp_path):
    data = _data(tmp_path, n=8)
    env = {**_env(), "VLMKIT_DIST_TIMEOUT_S": "10"}
    proc = subprocess.run(
        _command(2, data, tmp_path / "run", "--hang-rank", "1"), env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0
    assert "another process of the job died or stopped answering" in proc.stderr
    assert "rerun the same command" in proc.stderr
