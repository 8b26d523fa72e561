"""Experiment trackers of a training run.

TensorBoard writes to RUN_DIR/logs/tensorboard. W&B and MLflow record the Trainer's steps through transformers'
`report_to` integrations (metrics each logging step, the training arguments and model config as parameters);
`Trackers` completes them with what only vlmkit knows:
  - the run config as parameters (`vlmkit.lora.rank`, `vlmkit.optim.lr`, ... in MLflow; `vlmkit` in W&B's config),
  - the final evaluation in the same tracker run (MLflow's integration ends its run at the end of training, and a
    later `evaluate()` would otherwise start a stray second run),
  - the run's files as artifacts: `run/` (config.yaml, manifest.json, log_history.json, logs/metrics.jsonl) and the
    final `adapter/` or `model/` folder (`tracking.log_model`),
  - an end status: a failed run is marked failed in MLflow and finished with exit code 1 in W&B.
Only the main process talks to the trackers.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..config import RunConfig, dotted_items

log = logging.getLogger("vlmkit.train")

RUN_FILES = ("config.yaml", "manifest.json", "log_history.json", "logs/metrics.jsonl")
MAX_PARAM_CHARS = 500  # MLflow refuses longer parameter values; paths and lists fit


class Trackers:
    """The trackers of one run: `callbacks()` for the Trainer, then `finish_training()` right after
    `trainer.train()`, `publish(final_dir)` once the final folder and manifest are written, `fail()` on an error."""

    def __init__(self, config: RunConfig, run_dir: Path, main: bool = True):
        self.config, self.run_dir, self.main = config, run_dir, main
        self.backends = set(config.tracking.backends)
        self.mlflow_run_id: str | None = None
        self.wandb_run: Any = None
        self.wandb_started_here = False
        self._closed = False
        project = config.tracking.project
        if project and "wandb" in self.backends:
            os.environ.setdefault("WANDB_PROJECT", project)  # WandbCallback reads only this
        if project and "mlflow" in self.backends:
            os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", project)
        if "wandb" in self.backends:
            # the W&B run folder (offline runs live there until `wandb sync`) goes with the run, not into the cwd
            os.environ.setdefault("WANDB_DIR", str(run_dir / "logs"))
            import wandb

            self.wandb_started_here = wandb.run is None  # a run the caller opened is theirs to finish

    def callbacks(self) -> list[Any]:
        out: list[Any] = []
        if "tensorboard" in self.backends:
            from transformers.integrations import TensorBoardCallback

            tensorboard = TensorBoardCallback()
            tensorboard.logging_dir = str(self.run_dir / "logs" / "tensorboard")
            out.append(tensorboard)
        if self.backends & {"wandb", "mlflow"}:
            out.append(_RunParams(self))  # after the report_to callbacks, which open the tracker runs
        return out

    def finish_training(self) -> None:
        """Reopen the MLflow run its integration closed at the end of training, for the final evaluation's
        metrics and the artifacts."""
        if self.main and self.mlflow_run_id:
            import mlflow

            if mlflow.active_run() is None:
                mlflow.start_run(run_id=self.mlflow_run_id)

    def publish(self, final_dir: Path) -> None:
        """Log the run's files and final folder as artifacts and close the tracker runs as finished."""
        if not self.main or self._closed:
            return
        files = [self.run_dir / name for name in RUN_FILES if (self.run_dir / name).is_file()]
        model = final_dir if self.config.tracking.log_model and final_dir.is_dir() else None
        if self.mlflow_run_id:
            from mlflow.tracking import MlflowClient

            client = MlflowClient()
            for path in files:
                client.log_artifact(self.mlflow_run_id, str(path), "run")
            if model is not None:
                client.log_artifacts(self.mlflow_run_id, str(model), model.name)
        if self.wandb_run is not None:
            import wandb

            name = _artifact_name(self.config.tracking.run_name or self.config.run_name())
            run_files = wandb.Artifact(f"{name}-run", type="run")
            for path in files:
                run_files.add_file(str(path), name=path.relative_to(self.run_dir).as_posix())
            self.wandb_run.log_artifact(run_files)
            if model is not None:
                weights = wandb.Artifact(f"{name}-{model.name}", type="model")
                weights.add_dir(str(model))
                self.wandb_run.log_artifact(weights)
        self._close(failed=False)

    def fail(self) -> None:
        if self.main and not self._closed:
            try:
                self._close(failed=True)
            except Exception as exc:  # the run's own error is the one to report
                log.warning("could not mark the tracker runs failed: %s", exc)

    def _close(self, failed: bool) -> None:
        self._closed = True
        if self.mlflow_run_id:
            import mlflow

            active = mlflow.active_run()
            if active is not None and active.info.run_id == self.mlflow_run_id:
                mlflow.end_run(status="FAILED" if failed else "FINISHED")
            elif failed:
                from mlflow.tracking import MlflowClient

                MlflowClient().set_terminated(self.mlflow_run_id, status="FAILED")
        if self.wandb_run is not None and self.wandb_started_here:
            self.wandb_run.finish(exit_code=1 if failed else 0)


class _RunParams(TrainerCallback):
    """Records the tracker runs the report_to integrations opened and gives them vlmkit's config as parameters."""

    def __init__(self, trackers: Trackers):
        self.trackers = trackers

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        trackers = self.trackers
        settings = trackers.config.model_dump(mode="json")
        if "mlflow" in trackers.backends:
            import mlflow

            run = mlflow.active_run()
            if run is not None:
                trackers.mlflow_run_id = run.info.run_id
                mlflow.log_params({f"vlmkit.{key}": _param(value) for key, value in dotted_items(settings).items()})
        if "wandb" in trackers.backends:
            import wandb

            if wandb.run is not None:
                trackers.wandb_run = wandb.run
                wandb.run.config.update({"vlmkit": settings}, allow_val_change=True)


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 3] + "..."


def _artifact_name(name: str) -> str:
    """W&B artifact names allow letters, digits, '-', '_' and '.'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"
