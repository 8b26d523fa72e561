"""Run under torchrun by the data-parallel infer tests: `vlmkit.infer.predict.PredictionRun` (what `vlmkit infer
--data` runs) with the tiny model; `--delay` seconds after each answer give a test time to kill the job mid-run, and
`--hang-rank R` makes rank R stop answering (a hung process)."""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hang-rank", type=int)
    args = parser.parse_args()

    import torch

    from vlmkit.distributed import current_world
    from vlmkit.infer import GenerationParams, load_engine
    from vlmkit.infer.predict import PredictionRun

    torch.set_num_threads(1)
    hang = args.hang_rank is not None and int(os.environ.get("RANK", "0")) == args.hang_rank
    run = PredictionRun(args.data, args.out, GenerationParams(max_new_tokens=3), model=args.model)
    engine = load_engine(args.model, batch_size=2, device=current_world().device())
    generate = engine.iter_generate

    def slowed(samples, params):
        for item in generate(samples, params):
            time.sleep(3600 if hang else args.delay)
            yield item

    engine.iter_generate = slowed
    summary = run.execute(engine, progress=False)
    if run.parallel.main:
        print(f"predicted {summary.predicted}, failed {len(summary.errors)}", flush=True)


if __name__ == "__main__":
    main()
