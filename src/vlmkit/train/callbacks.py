"""Trainer callbacks: a progress bar with loss / learning rate / samples per second, live metric logs in the run
directory, and a per-rank record that shows every process of a distributed run took part."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from ..io import JsonlAppender, iter_jsonl, write_json, write_jsonl

log = logging.getLogger("vlmkit.train")


class SamplesPerSecond:
    """Throughput of the optimiser steps done in this process's run (a resumed run restarts the clock)."""

    def __init__(self, samples_per_step: float):
        self.samples_per_step = samples_per_step
        self.start_time: float | None = None
        self.start_step = 0

    def start(self, step: int) -> None:
        self.start_time, self.start_step = time.perf_counter(), step

    def rate(self, step: int) -> float | None:
        if self.start_time is None or step <= self.start_step:
            return None
        return (step - self.start_step) * self.samples_per_step / (time.perf_counter() - self.start_time)


class ProgressBar(ProgressCallback):
    """Trainer's tqdm bar, with the latest loss, learning rate and samples/s as its postfix instead of log dumps."""

    def __init__(self, throughput: SamplesPerSecond):
        super().__init__()
        self.throughput = throughput
        self.postfix: dict[str, str] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not (state.is_world_process_zero and self.training_bar is not None and logs):
            return
        if "loss" in logs:
            self.postfix["loss"] = f"{logs['loss']:.4f}"
        if "learning_rate" in logs:
            self.postfix["lr"] = f"{logs['learning_rate']:.2e}"
        if "eval_loss" in logs:
            self.postfix["eval_loss"] = f"{logs['eval_loss']:.4f}"
        rate = self.throughput.rate(state.global_step)
        if rate is not None:
            self.postfix["samples/s"] = f"{rate:.2f}"
        self.training_bar.set_postfix(self.postfix, refresh=True)


def step_line(state: Any, logs: dict[str, Any], rate: float | None) -> str:
    """One plain progress line: step, loss, lr, samples/s, ETA (train.log, and stderr off a terminal)."""
    from ..progress import eta

    step, total = state.global_step, state.max_steps
    parts = [f"step {step}/{total}" if total else f"step {step}"]
    if "loss" in logs:
        parts.append(f"loss {logs['loss']:.4f}")
    if "eval_loss" in logs:
        parts.append(f"eval_loss {logs['eval_loss']:.4f}")
    if "learning_rate" in logs:
        parts.append(f"lr {logs['learning_rate']:.2e}")
    if rate is not None:
        parts.append(f"{rate:.2f} samples/s")
        samples_per_step = logs.get("_samples_per_step")
        left = eta(step, total, rate / samples_per_step) if samples_per_step else None
        if left:
            parts.append(f"ETA {left}")
    return ", ".join(parts)


class PlainProgressLines(TrainerCallback):
    """Off a terminal: one plain line per logged step, at most every VLMKIT_PROGRESS_SECONDS, and the last step's;
    no tqdm bars (they become kilobyte lines of carriage returns in a log)."""

    def __init__(self, throughput: SamplesPerSecond, stream: Any = None):
        import sys

        self.throughput = throughput
        self.stream = stream or sys.stderr
        self.last = 0.0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not (state.is_world_process_zero and logs and ("loss" in logs or "eval_loss" in logs)):
            return  # the end-of-training summary record is not a step
        from ..progress import interval_s

        now = time.monotonic()
        last_step = state.max_steps and state.global_step >= state.max_steps
        if now - self.last < interval_s() and not last_step and self.last:
            return
        self.last = now
        rate = self.throughput.rate(state.global_step)
        logs = {**logs, "_samples_per_step": self.throughput.samples_per_step}
        print(step_line(state, logs, rate), file=self.stream, flush=True)


class RunLogger(TrainerCallback):
    """Appends every log record to logs/metrics.jsonl (live) and keeps log_history.json current at each save."""

    def __init__(self, run_dir: Path, throughput: SamplesPerSecond):
        self.run_dir = run_dir
        self.throughput = throughput
        self._metrics: JsonlAppender | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.throughput.start(state.global_step)
        if state.is_world_process_zero:
            path = self.run_dir / "logs" / "metrics.jsonl"
            _drop_after(path, state.global_step)  # a resumed run logs again what came after its checkpoint
            self._metrics = JsonlAppender(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._metrics is not None and logs:
            record: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch, **logs}
            rate = self.throughput.rate(state.global_step)
            if rate is not None:
                record["samples_per_second"] = rate
            self._metrics.write(record)
            if "loss" not in logs and "eval_loss" not in logs:
                return
            # logs/train.log (the run's file handler) gets a plain progress line for every logged step
            line = step_line(state, {**logs, "_samples_per_step": self.throughput.samples_per_step}, rate)
            log.info("%s", line)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            write_json(self.run_dir / "log_history.json", state.log_history)

    def on_train_end(self, args, state, control, **kwargs):
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None


def _drop_after(path: Path, step: int) -> None:
    """Keep only the records up to `step` (those the checkpoint being resumed knows about)."""
    if not path.exists():
        return
    kept = [row for _, row in iter_jsonl(path, skip_torn_tail=True) if row.get("step", 0) <= step]
    write_jsonl(path, kept)


class RankRecord(TrainerCallback):
    """Each process writes logs/rank-<k>.json at the end: its rank, the world size, the micro-batches it ran, and
    how many parameter elements it holds against the model's total (under FSDP or ZeRO-3 its shard only)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.micro_batches = 0
        self.storage: dict[str, int] = {}

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if not self.storage and model is not None:  # after the Trainer wrapped (and sharded) the model
            self.storage = parameter_storage(model)

    def on_substep_end(self, args, state, control, **kwargs):
        self.micro_batches += 1

    def on_step_end(self, args, state, control, **kwargs):
        self.micro_batches += 1

    def on_train_end(self, args, state, control, **kwargs):
        write_json(
            self.run_dir / "logs" / f"rank-{args.process_index}.json",
            {
                "rank": args.process_index,
                "world_size": args.world_size,
                "micro_batches": self.micro_batches,
                "global_step": state.global_step,
                **self.storage,
            },
        )


def parameter_storage(model: Any) -> dict[str, int]:
    """Parameter elements held by this process (`local_parameters`) and in the whole model (`parameters`): an
    FSDP2 parameter is a DTensor whose local shard is `to_local()`, a ZeRO-3 one keeps its partition in
    `ds_tensor` (and `ds_numel` for the whole)."""
    local = total = 0
    for param in model.parameters():
        if hasattr(param, "ds_tensor"):
            local += param.ds_tensor.numel()
            total += param.ds_numel
        elif hasattr(param, "to_local"):
            local += param.to_local().numel()
            total += param.numel()
        else:
            local += param.numel()
            total += param.numel()
    return {"local_parameters": local, "parameters": total}
