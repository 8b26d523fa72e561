"""Stop a run that has stopped learning, with a sentence that says why, instead of training on garbage.

- A non-finite loss or gradient norm (a learning rate far too high without clipping) stops the run at once;
  checkpoints saved after the last finite step are deleted, so --resume starts from weights that still work.
- A gradient norm of exactly 0 or a loss that does not change between logged steps (a dead model: lr so high
  that clipping cannot save it) is warned about after a few logged steps and stops the run after
  `train.stall_steps` of them.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from transformers import TrainerCallback

from ..errors import VlmkitError, disk_full_message
from . import checkpoints

log = logging.getLogger("vlmkit.train")

WARN_AFTER = 3  # logged steps in a row before the stall warning


class TrainingDiverged(VlmkitError):
    """Loss or gradient norm became NaN/inf, or the model stopped learning."""


class TrainingGuard(TrainerCallback):
    def __init__(self, checkpoint_root: Path, stall_steps: int | None):
        self.checkpoint_root = checkpoint_root
        self.stall_steps = stall_steps
        self.last_finite: int | None = None
        self.previous_loss: float | None = None
        self.stalled: list[int] = []  # logged steps in the current stall
        self.reason = ""
        self.warned = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        step = state.global_step
        loss, grad_norm = logs.get("loss"), logs.get("grad_norm")
        for name, value in (("loss", loss), ("gradient norm", grad_norm)):
            if value is not None and not math.isfinite(value):
                self._diverged(name, value, step)
        self.last_finite = step
        self._watch_stall(step, loss, grad_norm)
        self.previous_loss = loss

    def _diverged(self, name: str, value: float, step: int) -> None:
        shown = "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        last = f"last finite at step {self.last_finite}" if self.last_finite is not None else "never finite"
        removed = checkpoints.remove_after(self.checkpoint_root, (self.last_finite or 1) - 1)
        if removed:
            log.warning("deleted checkpoints saved after the last finite step: %s", ", ".join(p.name for p in removed))
        raise TrainingDiverged(f"{name} is {shown} at step {step} ({last}; lower optim.lr or enable clipping)")

    def _watch_stall(self, step: int, loss: float, grad_norm: float | None) -> None:
        if grad_norm is not None and grad_norm == 0.0:
            reason = "gradient norm is 0.0"
        elif self.previous_loss is not None and loss == self.previous_loss:
            reason = f"loss is stuck at {loss:.6g}"
        else:
            self.stalled, self.warned = [], False
            return
        self.stalled.append(step)
        self.reason = reason
        count = len(self.stalled)
        if count >= WARN_AFTER and not self.warned:
            self.warned = True
            log.warning(
                "WARNING: %s for %d logged steps in a row (since step %d): the model has stopped learning; "
                "lower optim.lr%s",
                reason,
                count,
                self.stalled[0],
                f" (the run stops after {self.stall_steps} such steps: train.stall_steps)" if self.stall_steps else "",
            )
        if self.stall_steps and count >= self.stall_steps:
            raise TrainingDiverged(
                f"training stalled: {reason} for {count} logged steps (steps {self.stalled[0]}-{step}); "
                "lower optim.lr (train.stall_steps sets this limit)"
            )


def describe(exc: BaseException) -> str:
    """One line for manifest.json's `error`: our own errors as they are; a full disk said plainly."""
    disk = disk_full_message(exc)
    if disk:
        return disk
    if isinstance(exc, VlmkitError):
        return (str(exc).splitlines() or [type(exc).__name__])[0]
    text = f"{type(exc).__name__}: {exc}".strip()
    return (text.splitlines() or [""])[0][:500]
