"""Benchmark `vlmkit data import` on generated DocVQA-schema parquet: records/s and peak memory.

Two datasets are generated in the same run, 5,000 and 20,000 records (two questions per page image,
sharded 2,500 rows per file, written by `datasets` so the image column is the real {bytes, path}
struct). Each import runs in a fresh process that reports its peak RSS, so the numbers don't mix.

Compared within the run (ratios, not absolute numbers, are the result):
- memory: peak RSS at 20k / peak RSS at 5k; a streaming import stays near 1.0
- speed: import time / baseline time, where the baseline is the least any importer must do on the
  same files: read the parquet batches with pyarrow, sha256 every image and fully decode each distinct
  one with PIL. The ratio is the cost of validation, storage and the report on top of that.

The same two sizes are also generated as a VLMEvalKit benchmark TSV (`--format vlmevalkit`): MMBench-like
rows with the image inline as base64, one question in four carrying its own image and the other three
(its circular rotations) pointing at it by index. Its line reports the same memory ratio.

Usage: python benchmarks/bench_import.py [--sizes 5000 20000] [--keep DIR] [--skip-tsv]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS_PER_SHARD = 2500
QUESTIONS_PER_IMAGE = 2

RSS_NOW = r"""
def rss_now_kb(field="VmRSS:"):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

def peak_kb():
    # VmHWM is this process's own high-water mark; ru_maxrss can carry the parent's across fork + exec
    return rss_now_kb("VmHWM:")
"""

CHILD_IMPORT = (
    RSS_NOW
    + r"""
import json, resource, sys, time
from vlmkit.data.importers import import_dataset
import vlmkit.data.media, pyarrow.parquet, PIL.Image  # loaded before the baseline RSS is taken
base = rss_now_kb()
start = time.perf_counter()
report = import_dataset(sys.argv[1], sys.argv[2], format=sys.argv[3], progress=False)
seconds = time.perf_counter() - start
peak = peak_kb()
print(json.dumps({"seconds": seconds, "peak_kb": peak, "base_kb": base, "records": report["records_read"],
                  "samples": report["samples_written"], "images": report["images_stored"]}))
"""
)

CHILD_BASELINE = (
    RSS_NOW
    + r"""
import hashlib, io, json, resource, sys, time
from pathlib import Path
import pyarrow.parquet as pq
from PIL import Image
base = rss_now_kb()
start = time.perf_counter()
seen, records = set(), 0
for path in sorted(Path(sys.argv[1]).glob("*.parquet")):
    for batch in pq.ParquetFile(path).iter_batches(batch_size=32):
        for row in batch.to_pylist():
            records += 1
            data = row["image"]["bytes"]
            digest = hashlib.sha256(data).digest()
            if digest not in seen:
                seen.add(digest)
                Image.open(io.BytesIO(data)).convert("RGB")
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_kb": peak_kb(),
                  "base_kb": base, "records": records}))
"""
)


def generate(folder: Path, records: int) -> Path:
    """DocVQA-schema shards; page images are small JPEGs, distinct per page."""
    import datasets
    import numpy as np
    from PIL import Image

    datasets.disable_progress_bars()
    s = datasets.Value("string")
    features = datasets.Features(
        {
            "questionId": s,
            "question": s,
            "question_types": datasets.List(s),
            "image": datasets.Image(),
            "docId": datasets.Value("int64"),
            "ucsf_document_id": s,
            "ucsf_document_page_no": s,
            "answers": datasets.List(s),
            "data_split": s,
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shards = (records + ROWS_PER_SHARD - 1) // ROWS_PER_SHARD
    for shard in range(shards):
        rows = {name: [] for name in features}
        for i in range(shard * ROWS_PER_SHARD, min(records, (shard + 1) * ROWS_PER_SHARD)):
            page = i // QUESTIONS_PER_IMAGE
            if i % QUESTIONS_PER_IMAGE == 0:
                grid = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(grid, "RGB").resize((160, 120), Image.Resampling.BILINEAR).save(
                    buffer, "JPEG", quality=85
                )
                image = {"bytes": buffer.getvalue(), "path": f"page{page}.jpg"}
            rows["questionId"].append(str(i))
            rows["question"].append(f"What is the total amount on page {page}, line {i % 7}?")
            rows["question_types"].append(["table/list"])
            rows["image"].append(image)
            rows["docId"].append(page // 3)
            rows["ucsf_document_id"].append(f"doc{page // 3}")
            rows["ucsf_document_page_no"].append(str(page % 3))
            rows["answers"].append([f"${i}.00", f"{i}"])
            rows["data_split"].append("train")
        datasets.Dataset.from_dict(rows, features=features).to_parquet(
            str(folder / f"train-{shard:05d}-of-{shards:05d}.parquet")
        )
    return folder


def generate_tsv(folder: Path, records: int) -> Path:
    """A VLMEvalKit-layout TSV: index, question, hint, A-D, answer, category, image (base64 or an index)."""
    import base64
    import csv
    import random

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "MMBench_like.tsv"
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image"])
        for i in range(records):
            question, rotation = i // 4, i % 4
            if rotation == 0:
                image = Image.frombytes("RGB", (160, 120), rng.randbytes(160 * 120 * 3))
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=90)
                cell = base64.b64encode(buffer.getvalue()).decode()
            else:
                cell = str(question)
            options = [f"option {question}-{k}" for k in range(4)]
            options = options[rotation:] + options[:rotation]
            writer.writerow(
                [
                    question + rotation * 1_000_000,
                    f"Which one is shown in image {question}?",
                    "",
                    *options,
                    "ABCD"[(4 - rotation) % 4],
                    f"cat{question % 20}",
                    cell,
                ]
            )
    return path


def run_child(code: str, *args: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[5000, 20000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--keep", type=Path, help="keep the generated data and outputs here")
    parser.add_argument("--skip-tsv", action="store_true", help="leave out the VLMEvalKit TSV line")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_import_"))
    results = {}
    try:
        for n in args.sizes:
            started = time.perf_counter()
            source = generate(work / f"src_{n}", n)
            generated = time.perf_counter() - started
            baseline = run_child(CHILD_BASELINE, str(source))
            imported = run_child(CHILD_IMPORT, str(source), str(work / f"out_{n}"), "docvqa")
            assert imported["samples"] == n, imported
            results[n] = {"generate_s": generated, "baseline": baseline, "import": imported}
            if not args.skip_tsv:
                tsv = generate_tsv(work / f"tsv_{n}", n)
                results[n]["tsv"] = run_child(CHILD_IMPORT, str(tsv), str(work / f"tsv_out_{n}"), "vlmevalkit")
                results[n]["tsv"]["mb"] = tsv.stat().st_size / 1e6
                assert results[n]["tsv"]["samples"] == n, results[n]["tsv"]
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    small, large = args.sizes
    rows = []
    for n in args.sizes:
        r = results[n]
        imp, base = r["import"], r["baseline"]
        rows.append(
            {
                "records": n,
                "import_records_per_s": round(n / imp["seconds"], 1),
                "baseline_records_per_s": round(n / base["seconds"], 1),
                "import_vs_baseline_time": round(imp["seconds"] / base["seconds"], 2),
                "import_peak_rss_mb": round(imp["peak_kb"] / 1024, 1),
                "import_growth_mb": round((imp["peak_kb"] - imp["base_kb"]) / 1024, 1),
                "baseline_peak_rss_mb": round(base["peak_kb"] / 1024, 1),
                "images_stored": imp["images"],
            }
        )
    memory_ratio = results[large]["import"]["peak_kb"] / results[small]["import"]["peak_kb"]
    growth_small = max(1.0, rows[0]["import_growth_mb"])
    summary = {
        "benchmark": "import",
        "rows": rows,
        "peak_rss_ratio_large_vs_small": round(memory_ratio, 3),
        "growth_ratio_large_vs_small": round(rows[1]["import_growth_mb"] / growth_small, 3),
        "records_ratio": large / small,
        "memory_flat": memory_ratio < 1.25,
    }
    header = (
        f"{'records':>8} {'import rec/s':>13} {'baseline rec/s':>15} {'time x base':>12} "
        f"{'peak RSS MB':>12} {'growth MB':>10} {'images':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['records']:>8} {r['import_records_per_s']:>13} {r['baseline_records_per_s']:>15} "
            f"{r['import_vs_baseline_time']:>12} {r['import_peak_rss_mb']:>12} {r['import_growth_mb']:>10} "
            f"{r['images_stored']:>7}"
        )
    print(
        f"peak RSS {large} vs {small} records: x{summary['peak_rss_ratio_large_vs_small']} "
        f"for x{summary['records_ratio']:g} the records -> memory {'flat' if summary['memory_flat'] else 'GROWS'}"
    )
    if not args.skip_tsv:
        tsv_rows = [
            {
                "records": n,
                "tsv_mb": round(results[n]["tsv"]["mb"], 1),
                "records_per_s": round(n / results[n]["tsv"]["seconds"], 1),
                "peak_rss_mb": round(results[n]["tsv"]["peak_kb"] / 1024, 1),
                "growth_mb": round((results[n]["tsv"]["peak_kb"] - results[n]["tsv"]["base_kb"]) / 1024, 1),
                "images_stored": results[n]["tsv"]["images"],
            }
            for n in args.sizes
        ]
        ratio = results[large]["tsv"]["peak_kb"] / results[small]["tsv"]["peak_kb"]
        summary["vlmevalkit_tsv"] = {"rows": tsv_rows, "peak_rss_ratio_large_vs_small": round(ratio, 3)}
        summary["vlmevalkit_tsv"]["memory_flat"] = ratio < 1.25
        for r in tsv_rows:
            print(
                f"vlmevalkit TSV {r['records']:>6} rows ({r['tsv_mb']} MB, base64 inline): {r['records_per_s']} rec/s, "
                f"peak RSS {r['peak_rss_mb']} MB (+{r['growth_mb']} MB), {r['images_stored']} images"
            )
        print(
            f"vlmevalkit TSV peak RSS {large} vs {small} rows: x{round(ratio, 3)} -> memory "
            f"{'flat' if ratio < 1.25 else 'GROWS'}"
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
