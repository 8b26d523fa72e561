"""Benchmark: metric throughput (predictions/s) and the share of an eval run spent outside the model.

    python benchmarks/bench_metrics.py                  # 100,000 per-sample predictions, 20,000 for corpus metrics
    python benchmarks/bench_metrics.py --corpus-n 100000 --skip-model

Per-sample metrics are timed on 100,000 generated predictions each. The pycocoevalcap corpus metrics are
pure Python (BLEU, ROUGE-L, CIDEr-D) or a java process (METEOR) and take minutes at 100,000 captions, so
they run on --corpus-n captions (default 20,000; the table says how many), on pre-tokenized text; PTB
tokenization (java) is timed on its own. The eval-overhead part runs `vlmkit.eval.evaluate` with the tiny
qwen2_vl checkpoint at batch 16 and reports the time outside `model.generate` (prompt building, JSONL
writes, scoring, report and plots). Prints a table, then one JSON line. Numbers are relative to this machine.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

WORDS = (
    "a man woman dog cat red blue big small runs sits on the in park street table chart total invoice "
    "date amount yes no two three left right bottle car house tree"
).split()


def phrase(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def gen_vqa(rng: random.Random, n: int):
    preds, refs = [], []
    for _ in range(n):
        pool = [phrase(rng, 1, 2) for _ in range(3)]
        answers = [rng.choice(pool) for _ in range(10)]
        preds.append(rng.choice(pool + ["The " + pool[0].title() + "."]))
        refs.append(answers)
    return preds, refs


def gen_doc(rng: random.Random, n: int):
    preds, refs = [], []
    for _ in range(n):
        answer = phrase(rng, 1, 4)
        pred = answer if rng.random() < 0.5 else answer[:-2] + "xy"
        preds.append(pred.upper() if rng.random() < 0.2 else pred)
        refs.append([answer, answer.replace(" ", "")])
    return preds, refs


def gen_numbers(rng: random.Random, n: int):
    preds, refs = [], []
    for _ in range(n):
        value = rng.uniform(0, 1000)
        target = f"{value:.1f}" if rng.random() < 0.8 else rng.choice(WORDS)
        pred = f"{value * rng.uniform(0.9, 1.1):.2f}" if rng.random() < 0.7 else rng.choice(WORDS)
        preds.append(pred + ("%" if rng.random() < 0.1 else ""))
        refs.append([target])
    return preds, refs


def gen_captions(rng: random.Random, n: int):
    preds = [phrase(rng, 6, 12) for _ in range(n)]
    refs = [[phrase(rng, 6, 12) for _ in range(5)] for _ in range(n)]
    return preds, refs


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def bench_metrics(n: int, corpus_n: int, with_java: bool) -> list[dict]:
    from vlmkit import metrics

    rng = random.Random(0)
    rows = []
    sample_metrics = [
        ("vqa_accuracy", metrics.vqa_accuracy, gen_vqa),
        ("vqa_accuracy (lmms variant)", lambda p, a: metrics.vqa_accuracy(p, a, always_normalize=True), gen_vqa),
        ("anls", metrics.anls, gen_doc),
        ("relaxed_accuracy", metrics.relaxed_accuracy, gen_numbers),
        ("exact_match", metrics.exact_match, gen_doc),
        ("token_f1", metrics.token_f1, gen_doc),
    ]
    for name, fn, gen in sample_metrics:
        preds, refs = gen(rng, n)
        seconds = timed(lambda f, ps, rs: [f(p, a) for p, a in zip(ps, rs)], fn, preds, refs)
        rows.append({"metric": name, "n": n, "seconds": seconds, "per_s": n / seconds})
    preds, refs = gen_captions(rng, corpus_n)
    corpus = [("bleu", metrics.bleu), ("rouge_l", metrics.rouge_l), ("cider", metrics.cider)]
    if with_java:
        corpus.append(("meteor", metrics.meteor))
    for name, fn in corpus:
        if name == "meteor":
            metrics.meteor(preds[:2], refs[:2], tokenizer="none")  # start the java process outside the timing
        seconds = timed(fn, preds, refs, tokenizer="none")
        rows.append(
            {"metric": f"{name} (pre-tokenized)", "n": corpus_n, "seconds": seconds, "per_s": corpus_n / seconds}
        )
    from vlmkit.metrics.tokenizers import ptb_tokenize, simple_tokenize

    texts = preds + [r for group in refs for r in group]
    if with_java:
        seconds = timed(ptb_tokenize, texts)
        rows.append(
            {"metric": "PTB tokenizer (java)", "n": len(texts), "seconds": seconds, "per_s": len(texts) / seconds}
        )
    seconds = timed(lambda: [simple_tokenize(t) for t in texts])
    rows.append({"metric": "simple tokenizer", "n": len(texts), "seconds": seconds, "per_s": len(texts) / seconds})
    return rows


def bench_overhead(samples_n: int, batch_size: int, work: Path) -> dict:
    """evaluate() with the tiny qwen2_vl checkpoint; also with a zero-cost predictor for the fixed cost."""
    from vlmkit.data.schema import Sample

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # synthetic_media
    from synthetic_media import make_image

    from vlmkit.eval import evaluate
    from vlmkit.eval.engine import load_predict_fn
    from vlmkit.models.tiny import build_tiny

    checkpoint = build_tiny("qwen2_vl", work / "tiny-qwen2_vl")
    (work / "media").mkdir()
    samples = []
    for i in range(samples_n):
        path = work / "media" / f"{i}.png"
        make_image(seed=i).save(path)
        samples.append(
            Sample(
                id=f"s{i}",
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "image": str(path)},
                            {"type": "text", "text": f"What is written in box {i}?"},
                        ],
                    }
                ],
                answers=[str(i)],
                meta={"doc_type": ["form", "table", "letter"][i % 3]},
            )
        )
    predict, facts = load_predict_fn(str(checkpoint), batch_size=batch_size)
    evaluate(predict, "docvqa", samples[:batch_size], work / "warmup", batch_size=batch_size, make_plots=False)
    result = evaluate(predict, "docvqa", samples, work / "run", batch_size=batch_size, manifest=facts)
    timing = result.summary["timing"]
    free = evaluate(lambda reqs: ["0"] * len(reqs), "docvqa", samples, work / "free", batch_size=batch_size)
    return {
        "samples": samples_n,
        "batch_size": batch_size,
        "wall_s": timing["wall_s"],
        "model_s": timing["model_s"],
        "outside_model_share": timing["outside_model_share"],
        "overhead_ms_per_sample_no_model": 1000 * free.summary["timing"]["wall_s"] / samples_n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="predictions per per-sample metric")
    parser.add_argument("--corpus-n", type=int, default=20_000, help="captions for BLEU/ROUGE-L/CIDEr/METEOR")
    parser.add_argument("--eval-samples", type=int, default=256, help="samples for the eval-overhead run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-model", action="store_true", help="skip the tiny-checkpoint eval run")
    args = parser.parse_args()

    with_java = shutil.which("java") is not None
    rows = bench_metrics(args.n, args.corpus_n, with_java)
    print(f"{'metric':<32} {'n':>8} {'seconds':>9} {'per second':>12}")
    for row in rows:
        print(f"{row['metric']:<32} {row['n']:>8} {row['seconds']:>9.2f} {row['per_s']:>12,.0f}")
    if not with_java:
        print("(java not found: METEOR and the PTB tokenizer were skipped)")
    overhead = None
    if not args.skip_model:
        with tempfile.TemporaryDirectory() as tmp:
            overhead = bench_overhead(args.eval_samples, args.batch_size, Path(tmp))
        print(
            f"\neval run, tiny qwen2_vl, {overhead['samples']} samples at batch {overhead['batch_size']}: "
            f"{overhead['wall_s']:.1f} s wall, {overhead['model_s']:.1f} s in the model, "
            f"{100 * overhead['outside_model_share']:.1f} % outside it (target < 10 %); "
            f"without a model the whole run costs {overhead['overhead_ms_per_sample_no_model']:.2f} ms per sample"
        )
    print(json.dumps({"bench": "metrics", "metrics": rows, "eval_overhead": overhead}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
