"""Run under torchrun by the distributed training tests: `vlmkit.train.train` on a config, optionally stopped after
N optimiser steps (like a killed job: later checkpoints never happen) or resumed."""

from __future__ import annotations

import argparse

from transformers import TrainerCallback

from vlmkit.train import train


class StopAfter(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    callbacks = [StopAfter(args.stop_after)] if args.stop_after else []
    train(args.config, resume=args.resume, callbacks=callbacks, progress=False)


if __name__ == "__main__":
    main()
