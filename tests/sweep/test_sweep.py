"""vlmkit sweep: validation, grid and TPE studies of real tiny runs, several workers, kill -9 and resume,
pruning, the report and compare over a sweep folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_sweep

from vlmkit.errors import ConfigError
from vlmkit.eval.compare import compare
from vlmkit.sweep import load_sweep
from vlmkit.sweep.report import write_sweep_report
from vlmkit.sweep.runner import run_worker

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "vlmkit"]


def trials_of(out: Path) -> list:
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'study.db'}")
    return [t for t in study.get_trials() if not t.user_attrs.get("skipped")]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"space": {"lora.rnak": [2, 4]}}, "lora.rnak"),
        ({"space": {"lora.rank": [0, 4]}}, "space 'lora.rank' = 0"),
        ({"space": {"optim.lr": {"log_uniform": [1e-4, 1e-2]}}}, "sampler 'grid' needs lists"),
        ({"objective": {"task": "docvqa", "data": "colours", "metric": "bleu"}}, "not a score of task 'docvqa'"),
        ({"objective": {"task": "docvqa", "data": "nowhere"}}, "nowhere does not exist"),
        ({"sampler": "tpe", "space": {"optim.lr": {"log_uniform": [0, 1]}}}, "positive low bound"),
        ({"pruning": {"pruner": "median"}, "overrides": {"eval.every": None}}, "set eval.every and data.eval"),
    ],
)
def test_bad_sweep_files_name_the_key(sweep_base, keys, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_sweep(write_sweep(sweep_base, "bad", **keys))


def test_grid_rank_ablation_runs_each_point_once_and_reports(sweep_base, tmp_path):
    spec = write_sweep(sweep_base, "grid", space={"lora.rank": [2, 4], "optim.lr": [1e-3, 5e-3]}, trials=16)
    sweep = load_sweep(spec)
    assert sweep.budget == 4  # the grid's size caps the budget
    out = tmp_path / "grid"
    study = run_worker(sweep, out)
    trials = trials_of(out)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert sorted((t.params["lora.rank"], t.params["optim.lr"]) for t in trials) == [
        (2, 1e-3),
        (2, 5e-3),
        (4, 1e-3),
        (4, 5e-3),
    ]
    for trial in trials:  # each trial is a normal run folder with its own eval run
        run = Path(trial.user_attrs["run_dir"])
        config = json.loads(json.dumps(__import__("yaml").safe_load((run / "config.yaml").read_text())))
        assert config["lora"]["rank"] == trial.params["lora.rank"]
        assert (run / "adapter" / "adapter_config.json").exists()
        scores = json.loads((run / "eval" / "scores.json").read_text())
        assert trial.values[0] == pytest.approx(scores["overall"]["anls"])
    by_rank = {t.params["lora.rank"]: t.user_attrs["trainable_params"] for t in trials}
    assert by_rank[4] == 2 * by_rank[2]  # LoRA parameters grow linearly with the rank
    report = write_sweep_report(study, sweep, out)
    text = (out / "report.md").read_text()
    assert "| trial | state | lora.rank | optim.lr | trainable |" in text and "★" in text
    assert {"plots/objective_vs_lora_rank.png", "plots/objective_vs_optim_lr.png"} <= set(report["plots"])
    assert report["best"] == [t.number for t in study.best_trials]
    result = compare([out], resamples=20, make_png=False)  # the sweep folder stands for its trials
    assert [row["name"] for row in result["runs"]] == [f"trial {n:03d}" for n in range(4)]


def test_tpe_with_two_objectives_gives_a_pareto_front_and_continues_on_rerun(sweep_base, tmp_path):
    spec = write_sweep(
        sweep_base,
        "tpe",
        sampler="tpe",
        trials=3,
        space={"lora.rank": [2, 4, 8], "optim.lr": {"log_uniform": [1e-4, 1e-2]}},
        objective=[
            {"task": "docvqa", "data": "colours", "direction": "maximize"},
            {"metric": "trainable_params", "direction": "minimize"},
        ],
    )
    sweep = load_sweep(spec)
    out = tmp_path / "tpe"
    run_worker(sweep, out, max_trials=2)
    assert len(trials_of(out)) == 2
    study = run_worker(sweep, out)  # rerunning the command continues the same study up to the budget
    trials = trials_of(out)
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    assert all(1e-4 <= t.params["optim.lr"] <= 1e-2 for t in trials)
    report = write_sweep_report(study, sweep, out, make_plots=False)
    assert report["pareto_front"] and set(report["pareto_front"]) <= {t.number for t in trials}
    assert "Pareto front" in (out / "report.md").read_text()


def test_a_study_refuses_another_sweep(sweep_base, tmp_path):
    out = tmp_path / "s"
    run_worker(load_sweep(write_sweep(sweep_base, "one", space={"lora.rank": [2]})), out)
    other = load_sweep(write_sweep(sweep_base, "one", space={"lora.rank": [4]}))
    with pytest.raises(Exception, match="started with another sweep"):
        run_worker(other, out)


def test_pruning_stops_a_trial_whose_intermediate_eval_is_behind(sweep_base, tmp_path):
    # Trial 0 learns (lr 5e-3); trial 1 barely moves (lr 1e-9): its eval loss at every step is worse than
    # the median of the finished trial, so the median pruner stops it at its first eval.
    spec = write_sweep(
        sweep_base,
        "prune",
        space={"optim.lr": [5e-3, 1e-9]},
        overrides={"train.max_steps": 4},
        pruning={"pruner": "median", "startup_trials": 1},
    )
    out = tmp_path / "prune"
    run_worker(load_sweep(spec), out)
    first, second = trials_of(out)
    assert first.state.name == "COMPLETE"
    assert second.state.name == "PRUNED" and second.user_attrs["pruned_at_step"] == 1
    assert not (Path(second.user_attrs["run_dir"]) / "eval").exists()  # a pruned trial is not evaluated


def _start_worker(spec: Path, out: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*CLI, "sweep", str(spec), "--out", str(out), "--no-plots"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def test_two_workers_share_one_study_and_run_every_grid_point_once(sweep_base, tmp_path):
    spec = write_sweep(sweep_base, "two", space={"lora.rank": [2, 4, 8, 16]})
    out = tmp_path / "two"
    workers = [_start_worker(spec, out, tmp_path / f"w{i}.log") for i in range(2)]
    codes = [w.wait(timeout=600) for w in workers]
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs
    trials = trials_of(out)
    assert sorted(t.params["lora.rank"] for t in trials) == [2, 4, 8, 16]
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert all("trial" in text for text in logs)  # both workers took trials


def test_kill_9_mid_trial_then_rerun_completes_the_study(sweep_base, tmp_path):
    spec = write_sweep(sweep_base, "kill", space={"lora.rank": [2, 4]}, overrides={"train.max_steps": 40})
    out = tmp_path / "kill"
    worker = _start_worker(spec, out, tmp_path / "killed.log")
    deadline = time.monotonic() + 300
    while not list((out / "trials").glob("*/manifest.json")):  # training has started
        assert worker.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert trials_of(out)[0].state.name == "RUNNING"  # left behind by the dead worker
    rerun = subprocess.run(
        [*CLI, "sweep", str(spec), "--out", str(out), "--no-plots"], capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    trials = trials_of(out)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["lora.rank"] for t in complete) == [2, 4]  # every grid point done once
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and any(t.user_attrs.get("retry_of") == failed[0].number for t in complete)
    assert "1 fail" in (out / "report.md").read_text() and "2 complete" in (out / "report.md").read_text()
