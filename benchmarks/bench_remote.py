"""`--engine openai` against an endpoint with a fixed latency: samples/s at concurrency 1, 4, 16 and 32.

The endpoint is the tests' OpenAI-compatible server (tests/fake_openai.py) in its own process, answering every
request after exactly `--latency` seconds, so the ideal speed-up at concurrency C is C (less the last partial
wave). Each sample carries a small PNG, sent as a data URL as in a real image eval. Reported per concurrency:
samples/s, speed-up over concurrency 1 (measured in the same run) and its ratio to the ideal linear speed-up;
and the client overhead per request at concurrency 1: wall time per request above the endpoint's fixed
latency (an upper bound: it also holds the loopback HTTP round trip and the server's own parsing).

    python benchmarks/bench_remote.py                  # 200 samples, 200 ms, concurrency 1 4 16 32
    python benchmarks/bench_remote.py --samples 100 --latency 0.1 --concurrency 1 8

Targets (issue 14): >= 0.8 x ideal speed-up up to concurrency 16, < 5 ms client overhead per request.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = """
import sys, time
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAI
with FakeOpenAI(latency={latency}) as server:
    print(server.url, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2, help="the endpoint's fixed latency in seconds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def samples(folder: Path, n: int) -> list:
    from PIL import Image

    from vlmkit.data.schema import Sample

    out = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.new("RGB", (64, 48), (i % 256, 80, 160)).save(path)
        content = [{"type": "image", "image": str(path)}, {"type": "text", "text": f"What is shown in picture {i}?"}]
        out.append(Sample(id=f"s{i}", messages=[{"role": "user", "content": content}]))
    return out


def measure(url: str, batch: list, concurrency: int) -> dict:
    from vlmkit.infer import GenerationParams
    from vlmkit.infer.options import EndpointSettings, EngineOptions

    options = EngineOptions(engine="openai", endpoint=EndpointSettings(base_url=url, concurrency=concurrency))
    engine = options.load("bench-model")
    engine.generate(batch[:concurrency], GenerationParams(max_new_tokens=8))  # warm-up: connections, imports
    started = time.perf_counter()
    results = engine.generate(batch, GenerationParams(max_new_tokens=8))
    wall = time.perf_counter() - started
    failed = [r.error for r in results if r.error]
    if failed:
        raise SystemExit(f"concurrency {concurrency}: {len(failed)} requests failed, e.g. {failed[0]}")
    return {"concurrency": concurrency, "wall_s": wall, "samples_per_s": len(batch) / wall}


def bare_client(url: str, batch: list, concurrency: int) -> dict:
    """The baseline: a plain httpx async loop with the same bound, bodies built beforehand, no retry logic."""
    import asyncio

    import httpx

    from vlmkit.data.media_settings import MediaSettings
    from vlmkit.infer.openai_engine import chat_messages

    bodies = [{"model": "bench-model", "messages": chat_messages(s, MediaSettings()), "max_tokens": 8} for s in batch]

    async def run() -> float:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            gate = asyncio.Semaphore(concurrency)

            async def one(body: dict) -> None:
                async with gate:
                    response = await client.post(f"{url}/chat/completions", json=body)
                    response.raise_for_status()
                    response.json()

            await asyncio.gather(*(one(b) for b in bodies[:concurrency]))  # warm-up
            started = time.perf_counter()
            await asyncio.gather(*(one(b) for b in bodies))
            return time.perf_counter() - started

    wall = asyncio.run(run())
    return {"wall_s": wall, "samples_per_s": len(batch) / wall}


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    code = SERVER.format(tests=str(ROOT / "tests"), latency=args.latency)
    server = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            batch = samples(Path(tmp), args.samples)
            rows = []
            for c in args.concurrency:
                row = measure(url, batch, c)
                bare = bare_client(url, batch, c)
                row.update(bare_samples_per_s=bare["samples_per_s"], bare_wall_s=bare["wall_s"])
                rows.append(row)
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    base = next(r for r in rows if r["concurrency"] == 1) if any(r["concurrency"] == 1 for r in rows) else rows[0]
    for row in rows:
        c = row["concurrency"]
        row["speedup"] = row["samples_per_s"] / base["samples_per_s"] * base["concurrency"]
        row["ideal_speedup"] = c
        row["vs_ideal"] = row["speedup"] / c
        # the best a bound of C can do on N samples: ceil(N / C) full waves (the last one partly empty)
        row["vs_full_waves"] = row["speedup"] / (args.samples / math.ceil(args.samples / c))
    overhead_ms = 1000 * (base["wall_s"] / args.samples - args.latency) if base["concurrency"] == 1 else None
    # vlmkit's own share: its time per request minus the bare client's, same endpoint, same run
    extra_ms = 1000 * (base["wall_s"] - base["bare_wall_s"]) / args.samples if base["concurrency"] == 1 else None

    print(f"{args.samples} samples (64x48 PNG each), endpoint latency {1000 * args.latency:.0f} ms\n")
    print("| concurrency | samples/s | speed-up | speed-up / ideal | / best with full waves | bare httpx samples/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['concurrency']} | {row['samples_per_s']:.2f} | {row['speedup']:.2f}x | {row['vs_ideal']:.2f} "
            f"| {row['vs_full_waves']:.2f} | {row['bare_samples_per_s']:.2f} |"
        )
    if overhead_ms is not None:
        print(
            f"\nclient overhead per request (concurrency 1, above the {1000 * args.latency:.0f} ms latency): "
            f"{overhead_ms:.2f} ms; over a bare httpx client in the same run: {extra_ms:.2f} ms"
        )
    report = {
        "samples": args.samples,
        "latency_s": args.latency,
        "runs": rows,
        "client_overhead_ms": overhead_ms,
        "overhead_vs_bare_client_ms": extra_ms,
        "targets": {
            "vs_ideal_up_to_16": min(r["vs_ideal"] for r in rows if r["concurrency"] <= 16) >= 0.8,
            "overhead_under_5_ms": extra_ms is not None and extra_ms < 5,
        },
    }
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
