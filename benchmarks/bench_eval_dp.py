"""Benchmark: data-parallel `vlmkit eval` and `vlmkit infer --data` on 1 vs 2 processes (torchrun, one torch thread
each), same tiny model and data, in one run.

    python benchmarks/bench_eval_dp.py                 # tiny qwen2_vl, 48 image questions, 8 new tokens
    python benchmarks/bench_eval_dp.py --n 96 --max-new-tokens 16

Each row: the job's samples/s (all samples over the time the processes predicted side by side, as the report
states it), the speed-up over 1 process of the same verb measured in this run, and the overhead as a share of the
run's wall time: rank 0's merge of the part files plus, for eval, the scoring and report (scores.json timing merge_s
and score_s over wall_s; the infer manifest's merge_s over elapsed_s; one process writes no parts). For eval the
share of the wall time outside the model is shown too (timing.outside_model_share: also data loading and, in a job,
waiting for the slower rank to start). Prints a table, then one JSON line. With 2 cores shared by other work the
speed-up is bounded by the free cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_data(root: Path, n: int) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # synthetic_media
    from synthetic_media import make_image

    (root / "media").mkdir(parents=True)
    rows = []
    for i in range(n):
        make_image(64 + 8 * (i % 5), 48 + 8 * (i % 3), seed=i).save(root / "media" / f"{i}.png")
        content = [{"type": "image", "image": f"media/{i}.png"}, {"type": "text", "text": f"What is in box {i}?"}]
        rows.append({"id": f"q{i}", "messages": [{"role": "user", "content": content}], "answers": [f"box {i}"]})
    (root / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def run(nproc: int, model: Path, data: Path, out: Path, max_new_tokens: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    cmd += ["-m", "vlmkit", "eval", "--model", str(model), "--task", "docvqa", "--data", str(data)]
    cmd += ["--out", str(out), "--max-new-tokens", str(max_new_tokens), "--batch-size", "4", "--no-plots"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    scores = json.loads((out / "scores.json").read_text(encoding="utf-8"))
    timing = scores["timing"]
    return {
        "verb": "eval",
        "processes": nproc,
        "samples": timing["predicted"],
        "samples_per_s": timing["predicted"] / timing["model_s"],
        "wall_s": timing["wall_s"],
        "overhead_share": (timing["merge_s"] + timing["score_s"]) / timing["wall_s"],
        "outside_model_share": timing["outside_model_share"],
    }


def run_infer(nproc: int, model: Path, data: Path, out: Path, max_new_tokens: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    cmd += ["-m", "vlmkit", "infer", "--model", str(model), "--data", str(data), "--out", str(out)]
    cmd += ["--max-new-tokens", str(max_new_tokens), "--batch-size", "4", "--no-progress"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    manifest = json.loads(Path(f"{out}.manifest.json").read_text(encoding="utf-8"))
    return {
        "verb": "infer",
        "processes": nproc,
        "samples": manifest["counts"]["predicted"] + manifest["counts"]["errors"],
        "samples_per_s": manifest["samples_per_s"],
        "wall_s": manifest["elapsed_s"],
        "overhead_share": manifest.get("merge_s", 0.0) / manifest["elapsed_s"],
        "outside_model_share": None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="checkpoint (default: a tiny qwen2_vl built here)")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = args.model
        if model is None:
            from vlmkit.models.tiny import build_tiny

            model = build_tiny("qwen2_vl", root / "tiny", vocab="small")
        data = make_data(root / "data", args.n)
        rows = [run(p, model, data, root / f"out{p}", args.max_new_tokens) for p in (1, 2)]
        rows += [run_infer(p, model, data, root / f"infer{p}.jsonl", args.max_new_tokens) for p in (1, 2)]
    base = {row["verb"]: row["samples_per_s"] for row in rows if row["processes"] == 1}
    header = f"{'verb':>5} {'processes':>9} {'samples':>8} {'samples/s':>10} {'speed-up':>9}"
    print(f"{header} {'merge+score':>12} {'outside model':>14}")
    for row in rows:
        row["speed_up"] = row["samples_per_s"] / base[row["verb"]]
        outside = "" if row["outside_model_share"] is None else f"{100 * row['outside_model_share']:.1f}%"
        print(
            f"{row['verb']:>5} {row['processes']:>9} {row['samples']:>8} {row['samples_per_s']:>10.2f} "
            f"{row['speed_up']:>8.2f}x {100 * row['overhead_share']:>11.1f}% {outside:>14}"
        )
    print(json.dumps({"benchmark": "eval_dp", "rows": rows}))


if __name__ == "__main__":
    main()
