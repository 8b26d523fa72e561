"""Benchmark `vlmkit data check-leakage`'s media hash cache (issue 18: every run re-hashed every image).

Generates a train and an eval dataset of N distinct JPEG photos each (a quarter of eval copied from train, so
the report has findings), then times in one process, on the same files:
- baseline: `hash_cache=False`, every file read, sha256'd, decoded and perceptually hashed (the old behaviour),
  timed before and after the cached runs, the faster of the two;
- cold: the first run with a fresh cache (the same work, plus writing the cache);
- warm: the second run (nothing changed: only stat calls and cache look-ups).
The result is the ratios cold / baseline (the cache's overhead) and warm / baseline (what a rerun costs), and
that all three reports agree.

Usage: python benchmarks/bench_leakage_cache.py [--images 2000] [--size 640 480]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path


def make_dataset(root: Path, count: int, size: tuple[int, int], offset: int, shared: int = 0) -> Path:
    import numpy as np
    from PIL import Image

    from vlmkit.data.schema import DatasetWriter

    with DatasetWriter(root) as writer:
        for i in range(count):
            seed = i if i < shared else offset + i  # the first `shared` images are the same as train's
            grid = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(grid, "RGB").resize(size, Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=85)
            path = writer.add_media_bytes(buffer.getvalue(), ".jpg")
            writer.write(
                {
                    "id": f"{root.name}-{i}",
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "image", "image": path}, {"type": "text", "text": f"Question {i}?"}],
                        }
                    ],
                }
            )
    return root


def timed(train: Path, evals: Path, cache: object) -> tuple[float, dict]:
    from vlmkit.data.leakage import check_leakage

    start = time.perf_counter()
    report = check_leakage(train, evals, progress=False, hash_cache=cache)
    return time.perf_counter() - start, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images per side")
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["VLMKIT_CACHE_DIR"] = str(tmp / "cache")
        train = make_dataset(tmp / "train", args.images, tuple(args.size), offset=0)
        evals = make_dataset(tmp / "eval", args.images, tuple(args.size), offset=10**6, shared=args.images // 4)
        first, report0 = timed(train, evals, False)
        cold, report1 = timed(train, evals, True)
        warm, report2 = timed(train, evals, True)
        baseline = min(first, timed(train, evals, False)[0])  # before and after: less of the machine's drift
    agree = report0 == report1 == report2
    rows = [("baseline (no cache)", baseline), ("cold cache (first run)", cold), ("warm cache (rerun)", warm)]
    print(f"check-leakage, {args.images} + {args.images} images of {args.size[0]}x{args.size[1]}")
    print(f"{'run':<24} {'seconds':>8} {'x baseline':>10}")
    for name, seconds in rows:
        print(f"{name:<24} {seconds:>8.2f} {seconds / baseline:>10.3f}")
    print(f"reports identical: {agree}; exact duplicates found: {report0['exact_duplicates']['count']}")
    result = {
        "images_per_side": args.images,
        "size": list(args.size),
        "baseline_s": round(baseline, 3),
        "cold_s": round(cold, 3),
        "warm_s": round(warm, 3),
        "cold_ratio": round(cold / baseline, 3),
        "warm_ratio": round(warm / baseline, 3),
        "reports_identical": agree,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
