"""The in-process engine (`--engine hf`) vs a launched vLLM (`--engine vllm`): samples/s on the same samples.

Both engines get the same model, the same image samples and the same greedy generation length, each after
one warm-up batch; vLLM's start-up (process launch to healthy) is reported apart, not in its rate. The rows
are measured in the same run, on whatever machine runs the script, which the JSON records (CPU, cores, GPU,
vLLM's version and arguments). Without `--vllm-python` (or VLMKIT_VLLM_PYTHON) only the HF row is measured
and the table says vLLM was not.

    python benchmarks/bench_engines.py                                   # tiny Qwen2-VL (text width 128), 32 samples
    python benchmarks/bench_engines.py --vllm-python /work/vllm-env/bin/python --samples 64
    python benchmarks/bench_engines.py --model Qwen/Qwen2-VL-2B-Instruct --dtype bfloat16 --vllm-python ...

Expectation (issue 20): on a GPU with a real 2B checkpoint, vLLM well ahead of HF; on a CPU with a tiny model,
not (vLLM's per-step overhead dominates a model that small), and the table should say which it was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder or hub id (default: a tiny Qwen2-VL, text width 128)")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8, help="HF engine: samples per generate call")
    parser.add_argument("--concurrency", type=int, default=8, help="vLLM engine: requests in flight")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--vllm-python", default=os.environ.get("VLMKIT_VLLM_PYTHON"))
    parser.add_argument("--vllm-arg", action="append", default=[], help="passed to vLLM (repeatable)")
    parser.add_argument("--vllm-start-timeout", type=float, default=900.0)
    parser.add_argument("--skip-hf", action="store_true", help="measure the vLLM row only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def tiny_model(folder: Path) -> str:
    from vlmkit.models.tiny import build_tiny

    return str(build_tiny("qwen2_vl", folder / "tiny-qwen2_vl", text_hidden=128))  # vLLM's CPU needs head_dim >= 32


def image_samples(folder: Path, n: int) -> list:
    from PIL import Image

    from vlmkit.data.schema import Sample

    out = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.new("RGB", (96 + 8 * (i % 4), 64), ((37 * i) % 256, 80, 160)).save(path)
        content = [{"type": "image", "image": str(path)}, {"type": "text", "text": f"What is in picture {i}?"}]
        out.append(Sample(id=f"s{i}", messages=[{"role": "user", "content": content}]))
    return out


def run_engine(engine, samples: list, params) -> dict:
    engine.generate(samples[: min(4, len(samples))], params)  # warm-up
    started = time.perf_counter()
    results = engine.generate(samples, params)
    wall = time.perf_counter() - started
    failed = [r.error for r in results if r.error]
    if failed:
        raise SystemExit(f"{len(failed)} requests failed, e.g. {failed[0]}")
    tokens = sum(r.completion_tokens for r in results)
    return {"wall_s": wall, "samples_per_s": len(samples) / wall, "completion_tokens": tokens}


def hardware() -> dict:
    facts = {"platform": platform.platform(), "processor": platform.processor() or platform.machine()}
    facts["cpu_cores"] = os.cpu_count()
    try:
        import torch

        facts["torch_threads"] = torch.get_num_threads()
        facts["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        facts["gpu"] = None
    return facts


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from vlmkit.infer import GenerationParams
    from vlmkit.infer.options import EndpointSettings, EngineOptions, VllmSettings
    from vlmkit.markdown import md_table

    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    report: dict = {"hardware": hardware(), "samples": args.samples, "max_new_tokens": args.max_new_tokens, "rows": []}
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        folder = Path(tmp)
        model = args.model or tiny_model(folder)
        samples = image_samples(folder, args.samples)
        report["model"] = args.model or "tiny qwen2_vl (text hidden 128)"
        if not args.skip_hf:
            engine = EngineOptions(engine="hf", dtype=args.dtype).load(model, batch_size=args.batch_size)
            row = run_engine(engine, samples, params)
            report["rows"].append({"engine": "hf", "device": str(getattr(engine, "device", "")), **row})
            del engine
        if args.vllm_python:
            settings = VllmSettings(
                python=args.vllm_python,
                args=tuple(args.vllm_arg),
                start_timeout=args.vllm_start_timeout,
                log_file=str(folder / "vllm.log"),
                images_per_prompt=1,
            )
            options = EngineOptions(
                engine="vllm", dtype=args.dtype, endpoint=EndpointSettings(concurrency=args.concurrency), vllm=settings
            )
            started = time.perf_counter()
            engine = options.load(model, batch_size=args.samples)
            start_s = time.perf_counter() - started
            try:
                row = run_engine(engine, samples, params)
                info = engine.info()["vllm"]
            finally:
                engine.close()
            report["vllm"] = {"version": info["version"], "args": info["args"], "env": info["env"]}
            report["rows"].append({"engine": "vllm", "device": "vLLM server", "start_s": start_s, **row})
        else:
            report["vllm"] = None
    rows = report["rows"]
    hf = next((r for r in rows if r["engine"] == "hf"), None)
    table = []
    for row in rows:
        ratio = f"{row['samples_per_s'] / hf['samples_per_s']:.2f}x" if hf else "-"
        start = f"{row['start_s']:.0f} s" if "start_s" in row else "-"
        table.append([row["engine"], f"{row['samples_per_s']:.2f}", ratio, f"{row['wall_s']:.1f}", start])
    if not args.vllm_python:
        table.append(["vllm", "not measured (no --vllm-python / VLMKIT_VLLM_PYTHON)", "-", "-", "-"])
    machine = report["hardware"]["gpu"] or f"CPU, {report['hardware']['cpu_cores']} cores"
    print(f"{report['model']}, {args.samples} image samples, {args.max_new_tokens} new tokens, {args.dtype}, {machine}")
    print("\n".join(md_table(["engine", "samples/s", "vs hf", "wall s", "vLLM start"], table)))
    if args.vllm_python and not report["hardware"]["gpu"]:
        print("on a CPU with a small model vLLM's per-step overhead dominates; it is expected ahead on a GPU only")
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
