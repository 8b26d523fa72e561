"""Benchmark `data.augment`: what augmentation adds to building a training batch, and what the refusal scan costs.

    python benchmarks/bench_image_augment.py          # 16 images of 640 x 480 a batch, 5 batches, 50,000 questions
    python benchmarks/bench_image_augment.py --size 1024 768 --scan 200000

Batches: the tiny qwen2_vl processor (the real Qwen2-VL image processor, resizing to its default pixel budget)
builds the same batches with augmentation off and with every transform on at p=1 (colour jitter, crop, rotation,
blur, JPEG): the ratio on/off is the collator's overhead, measured in the same run, with one torch thread. The
refusal scan (`check_augment`, run once before training) is timed on generated en/vi/zh questions, none of which
mention left or right, so every question is read. Prints a table, then one JSON line. Numbers are relative to this
machine; the ratios are the result.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # synthetic_media

EVERYTHING = {
    "p": 1.0,
    "brightness": 0.3,
    "contrast": 0.3,
    "saturation": 0.3,
    "hue": 0.05,
    "crop_scale": 0.7,
    "rotation": 8,
    "jpeg_quality": [40, 90],
    "blur_sigma": [0.3, 1.2],
}
QUESTIONS = (
    "What colour is the bus?",
    "How many people are in the picture?",
    "Biển báo ghi chữ gì?",
    "Người đàn ông đang cầm cái gì?",
    "图片里有几只猫?",
    "这个标志上写着什么?",
)


def samples(folder: Path, n: int, size: tuple[int, int]) -> list:
    from synthetic_media import make_image

    from vlmkit.data.schema import Sample

    out = []
    for i in range(n):
        path = folder / f"img{i}.png"
        make_image(*size, seed=i).save(path)
        messages = [
            {"role": "user", "content": [{"type": "image", "image": str(path)}, {"type": "text", "text": "What?"}]},
            {"role": "assistant", "content": "shapes"},
        ]
        out.append(Sample.model_validate({"id": f"s{i}", "messages": messages}))
    return out


def time_batches(collator, batch, epoch, repeats: int) -> float:
    from vlmkit.data.image_augment import EpochItem

    items = batch if epoch is None else [EpochItem(s, epoch) for s in batch]
    collator(items)  # warm-up (imports, first decode)
    start = time.perf_counter()
    for _ in range(repeats):
        collator(items)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scan", type=int, default=50_000, help="questions for the refusal scan")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from vlmkit.config import AugmentSection
    from vlmkit.data.collate import VlmCollator
    from vlmkit.data.image_augment import Augmenter
    from vlmkit.data.image_augment_safety import check_augment
    from vlmkit.data.schema import Sample
    from vlmkit.models.loading import load_processor
    from vlmkit.models.registry import get_family
    from vlmkit.models.tiny import build_tiny

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny("qwen2_vl", root / "tiny")
        family = get_family("qwen2_vl")
        processor = load_processor(model, family)
        batch = samples(root, args.batch, tuple(args.size))
        off = time_batches(VlmCollator(processor, family), batch, None, args.repeats)
        augment = Augmenter(AugmentSection(**EVERYTHING), seed=0)
        on = time_batches(VlmCollator(processor, family, augment=augment), batch, 0, args.repeats)

    rng = random.Random(0)
    questions = [
        Sample.model_validate(
            {
                "id": f"q{i}",
                "messages": [{"role": "user", "content": rng.choice(QUESTIONS)}, {"role": "assistant", "content": "x"}],
            }
        )
        for i in range(args.scan)
    ]
    settings = AugmentSection(hflip=0.5, vflip=0.5)
    start = time.perf_counter()
    check_augment(settings, questions, None)
    scan = time.perf_counter() - start

    w, h = args.size
    rows = [
        (f"batch of {args.batch} images {w}x{h}, augment off", f"{off * 1000:.1f} ms", "1.00"),
        (f"batch of {args.batch} images {w}x{h}, every transform on", f"{on * 1000:.1f} ms", f"{on / off:.2f}"),
        (f"refusal scan, {args.scan:,} questions (hflip + vflip)", f"{scan * 1000:.0f} ms", ""),
    ]
    header = f"{'what':<56} {'time':>10} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for what, took, ratio in rows:
        print(f"{what:<56} {took:>10} {ratio:>6}")
    print(
        json.dumps(
            {
                "batch": args.batch,
                "size": [w, h],
                "batch_ms_off": round(off * 1000, 2),
                "batch_ms_on": round(on * 1000, 2),
                "ratio_on_off": round(on / off, 3),
                "per_image_ms_added": round((on - off) * 1000 / args.batch, 2),
                "scan_questions": args.scan,
                "scan_ms": round(scan * 1000, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
