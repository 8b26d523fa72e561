"""Benchmark: batched engine vs the seeds' per-sample loop, same model and data, in one run.

    python benchmarks/bench_infer.py                      # tiny qwen2_vl, 128 image questions, 16 new tokens
    python benchmarks/bench_infer.py --model PATH --n 128 --max-new-tokens 32 --threads 2

The baseline is what seeds 000/003/004 did: for each sample, render the chat template, open the image, call
the processor and `model.generate` once, decode. The engine runs the same samples through
`vlmkit.infer` (length buckets, left-padded batches) at batch sizes 1, 4 and 16. Each row reports samples/s,
the speed-up over the baseline measured in this run, and whether every prediction is identical to the
baseline's. Prints a table, then one JSON line. Numbers are relative to this machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES = [(64, 48), (32, 96), (120, 80), (50, 50), (200, 60), (96, 96), (48, 160), (140, 40)]
QUESTIONS = [
    "What colour is the background?",
    "How many rectangles are there?",
    "What is this?",
    "Describe the picture in a few words.",
    "Is there anything in the top left corner of the image?",
]


def make_dataset(root: Path, n: int) -> Path:
    from vlmkit.data.media import encode_image
    from vlmkit.data.schema import DatasetWriter

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # synthetic_media
    from synthetic_media import make_image

    with DatasetWriter(root) as writer:
        for k in range(n):
            w, h = SIZES[k % len(SIZES)]
            image = writer.add_media_bytes(encode_image(make_image(w, h, seed=k)), ".png")
            writer.write(
                {
                    "id": f"b{k}",
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "image", "image": image},
                                {"type": "text", "text": QUESTIONS[k % len(QUESTIONS)]},
                            ],
                        }
                    ],
                    "answers": ["x"],
                }
            )
    return root


def seed_loop(model_path: str, samples, max_new_tokens: int) -> tuple[list[str], float]:
    """The seeds' inference script: one processor call and one generate call per sample."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(model_path)
    model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=torch.float32).eval()
    answers = []
    started = time.perf_counter()
    for sample in samples:
        messages = [m.model_dump() for m in sample.prompt_messages()]
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        images = [Image.open(path).convert("RGB") for path in sample.media("image")]
        inputs = processor(text=[text], images=images, return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = output[0, inputs["input_ids"].shape[1] :]
        answers.append(processor.tokenizer.decode(new, skip_special_tokens=True).strip())
    return answers, time.perf_counter() - started


def engine_run(model_path: str, samples, max_new_tokens: int, batch_size: int) -> tuple[list[str], float]:
    from vlmkit.infer import GenerationParams, load_engine

    engine = load_engine(model_path, batch_size=batch_size)
    params = GenerationParams(max_new_tokens=max_new_tokens)
    engine.generate(samples[:2], params)  # warm-up, as the baseline's first call pays it too
    started = time.perf_counter()
    results = engine.generate(samples, params)
    elapsed = time.perf_counter() - started
    failed = [r.error for r in results if r.error]
    if failed:
        raise SystemExit(f"engine failed on {len(failed)} samples: {failed[0]}")
    return [r.text for r in results], elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder (default: a fresh tiny qwen2_vl)")
    parser.add_argument("--n", type=int, default=128, help="number of image questions")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fair on a shared machine)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from vlmkit.data.schema import read_samples

    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            from vlmkit.models.tiny import build_tiny

            model = str(build_tiny("qwen2_vl", tmp / "tiny-qwen2_vl"))
        samples = read_samples(make_dataset(tmp / "data", args.n))

        seed_loop(model, samples[:2], args.max_new_tokens)  # warm-up
        baseline, baseline_s = seed_loop(model, samples, args.max_new_tokens)
        rows = [
            {
                "runner": "seed loop (1 generate/sample)",
                "batch_size": 1,
                "seconds": baseline_s,
                "samples_per_s": len(samples) / baseline_s,
                "speedup": 1.0,
                "identical": True,
            }
        ]
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            answers, seconds = engine_run(model, samples, args.max_new_tokens, batch_size)
            rows.append(
                {
                    "runner": "vlmkit engine",
                    "batch_size": batch_size,
                    "seconds": seconds,
                    "samples_per_s": len(samples) / seconds,
                    "speedup": baseline_s / seconds,
                    "identical": answers == baseline,
                    "mismatches": sum(a != b for a, b in zip(answers, baseline)),
                }
            )

    print(
        f"model: {args.model or 'tiny qwen2_vl'}  samples: {len(samples)}  max_new_tokens: {args.max_new_tokens}  "
        f"threads: {args.threads}"
    )
    print(f"{'runner':<32} {'batch':>5} {'seconds':>8} {'samples/s':>10} {'speed-up':>9} {'identical':>10}")
    for row in rows:
        print(
            f"{row['runner']:<32} {row['batch_size']:>5} {row['seconds']:>8.2f} {row['samples_per_s']:>10.2f} "
            f"{row['speedup']:>8.2f}x {str(row['identical']):>10}"
        )
    at16 = next((r for r in rows if r["runner"] == "vlmkit engine" and r["batch_size"] == 16), None)
    summary = {
        "benchmark": "infer",
        "model": args.model or "tiny-qwen2_vl",
        "n": len(samples),
        "max_new_tokens": args.max_new_tokens,
        "threads": args.threads,
        "rows": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
        "speedup_at_16": round(at16["speedup"], 2) if at16 else None,
        "target_speedup_at_16": 5.0,
        "all_identical": all(r["identical"] for r in rows),
    }
    print(json.dumps(summary))
    if not summary["all_identical"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
