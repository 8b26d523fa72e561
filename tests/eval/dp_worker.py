"""Run under torchrun by the data-parallel eval tests: `vlmkit.eval.runner.evaluate` with the deterministic rule
model over a dataset; `--delay` seconds per batch give a test time to kill the job mid-run."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from eval_helpers import rule_predict  # noqa: E402

from vlmkit.eval.runner import evaluate  # noqa: E402
from vlmkit.eval.tasks import task_from_dict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hang-rank", type=int, help="this rank stops answering (a hung process)")
    args = parser.parse_args()
    hang = args.hang_rank is not None and int(os.environ.get("RANK", "0")) == args.hang_rank

    def predict(requests):
        time.sleep(3600 if hang else args.delay)
        return rule_predict(requests)

    task = task_from_dict({"name": "em", "metrics": ["exact_match"], "prompt": "{question} Short answer."})
    result = evaluate(predict, task, args.data, args.out, batch_size=2, make_plots=False)
    if result.summary is not None:
        print(f"scored {result.summary['counts']['predictions']}", flush=True)


if __name__ == "__main__":
    main()
