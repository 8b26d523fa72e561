"""Tracking backends end to end: a tiny LoRA run reports to MLflow (a local file store) and W&B (offline mode), and
what the trackers hold is read back with their own clients: per-step metrics, parameters (the Trainer's and
vlmkit's run config), the final evaluation in the same tracker run, artifacts (run files and the adapter), and the
end status. Both packages are in the dev extra; a machine without one skips its test with the install hint."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from pathlib import Path

import pytest
from train_helpers import base_config

from vlmkit.config import config_from_dict
from vlmkit.train import train

pytestmark = pytest.mark.slow

TRACKER_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
    "WANDB_PROJECT",
    "WANDB_DIR",
    "WANDB_MODE",
    "WANDB_RUN_ID",
)


def _clean_env(monkeypatch) -> None:
    """vlmkit fills unset tracker variables with setdefault; set-then-delete makes monkeypatch restore 'unset'."""
    for name in TRACKER_ENV:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tracked_run(tiny_model, image_data, out: Path, backends: list[str]):
    config = base_config(
        tiny_model("qwen2_vl"),
        image_data,
        out,
        name="tracked",
        data={"train": str(image_data), "eval": str(image_data), "eval_limit": 2},
        train={"batch_size": 2, "max_steps": 4, "seed": 0, "logging_steps": 1},
        tracking={"backends": backends, "project": "vlmkit-tracking-test"},
    )
    return train(config_from_dict(config), progress=False)


def test_mlflow_file_store_holds_metrics_params_eval_and_artifacts(tmp_path, monkeypatch, tiny_model, image_data):
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("mlflow is not installed: pip install 'vlmkit[mlflow]'")
    from mlflow.tracking import MlflowClient

    _clean_env(monkeypatch)
    store = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    result = _tracked_run(tiny_model, image_data, tmp_path / "run", ["mlflow"])

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("vlmkit-tracking-test")
    assert experiment is not None, "tracking.project names the MLflow experiment"
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, "the final evaluation goes into the training run, not a second one"
    run = runs[0]
    assert run.info.status == "FINISHED"

    losses = [row["loss"] for row in result.log_history if "loss" in row]
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert [m.value for m in history] == pytest.approx(losses)
    assert run.data.metrics["eval_loss"] == pytest.approx(result.eval_loss)

    params = run.data.params
    assert params["learning_rate"] == "0.005"  # the Trainer integration's parameters
    assert params["vlmkit.lora.rank"] == "4" and params["vlmkit.method"] == "lora"  # vlmkit's run config
    assert params["vlmkit.data.train"] == str(image_data)

    run_files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "run")}
    assert run_files == {"config.yaml", "manifest.json", "log_history.json", "metrics.jsonl"}
    local = Path(client.download_artifacts(run.info.run_id, "adapter", str(tmp_path / "download")))
    adapter = result.run_dir / "adapter"
    assert _sha256(local / "adapter_model.safetensors") == _sha256(adapter / "adapter_model.safetensors")
    manifest = json.loads((Path(client.download_artifacts(run.info.run_id, "run/manifest.json"))).read_text())
    assert manifest["status"] == "finished" and manifest["global_step"] == 4


def _wandb_records(run_file: Path) -> list:
    """Every record of an offline run's .wandb log, read with wandb's own reader."""
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore

    store = datastore.DataStore()
    store.open_for_scan(str(run_file))
    records = []
    while (data := store.scan_data()) is not None:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        records.append(record)
    return records


def test_wandb_offline_run_holds_history_config_and_artifacts(tmp_path, monkeypatch, tiny_model, image_data):
    if importlib.util.find_spec("wandb") is None:
        pytest.skip("wandb is not installed: pip install 'vlmkit[wandb]'")
    _clean_env(monkeypatch)
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))  # staging stays out of $HOME
    result = _tracked_run(tiny_model, image_data, tmp_path / "run", ["wandb"])

    import wandb

    wandb.teardown()  # the service writes the run log behind wandb.finish(); its shutdown flushes it
    run_files = list((result.run_dir / "logs" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1, "the offline run lives in RUN_DIR/logs/wandb"
    records = _wandb_records(run_files[0])
    for _ in range(50):  # and should a write still be in flight, wait (bounded) for the exit record
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            break
        time.sleep(0.2)
        records = _wandb_records(run_files[0])
    kinds = [r.WhichOneof("record_type") for r in records]

    def items(record):
        return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record}

    history = [items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    losses = [row["loss"] for row in result.log_history if "loss" in row]
    steps = [(row["train/global_step"], row["train/loss"]) for row in history if "train/loss" in row]
    assert [s for s, _ in steps] == [1, 2, 3, 4]
    assert [loss for _, loss in steps] == pytest.approx(losses)
    assert any(row.get("eval/loss") == pytest.approx(result.eval_loss) for row in history)

    config: dict = {}
    for record in records:
        if record.WhichOneof("record_type") == "config":
            config.update(items(record.config.update))
    assert config["learning_rate"] == 0.005  # the Trainer integration's config
    assert config["vlmkit"]["lora"]["rank"] == 4 and config["vlmkit"]["method"] == "lora"

    artifacts = {r.artifact.name: r.artifact for r in records if r.WhichOneof("record_type") == "artifact"}
    assert set(artifacts) == {"tracked-run", "tracked-adapter"}
    assert artifacts["tracked-adapter"].type == "model"
    entries = {entry.path: entry for entry in artifacts["tracked-adapter"].manifest.contents}
    staged = Path(entries["adapter_model.safetensors"].local_path)
    assert _sha256(staged) == _sha256(result.run_dir / "adapter" / "adapter_model.safetensors")
    assert {e.path for e in artifacts["tracked-run"].manifest.contents} == {
        "config.yaml",
        "manifest.json",
        "log_history.json",
        "logs/metrics.jsonl",
    }
    exits = [r.exit.exit_code for r in records if r.WhichOneof("record_type") == "exit"]
    assert exits == [0] and kinds.count("run") == 1


def test_a_failed_run_is_marked_failed_in_mlflow(tmp_path, monkeypatch, tiny_model, image_data):
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("mlflow is not installed: pip install 'vlmkit[mlflow]'")
    from mlflow.tracking import MlflowClient

    from vlmkit.train.guards import TrainingDiverged

    _clean_env(monkeypatch)
    store = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    config = base_config(
        tiny_model("qwen2_vl"),
        image_data,
        tmp_path / "run",
        optim={"lr": 1e30, "scheduler": "linear", "warmup_steps": 4, "max_grad_norm": None},  # NaN at step 3
        tracking={"backends": ["mlflow"], "project": "vlmkit-tracking-failure"},
    )
    with pytest.raises(TrainingDiverged):
        train(config_from_dict(config), progress=False)
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("vlmkit-tracking-failure")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    # the guard stops the run before the integrations see step 3's NaN gradient norm
    assert [m.step for m in client.get_metric_history(run.info.run_id, "grad_norm")] == [1, 2]
