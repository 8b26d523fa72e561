"""Load test of `vlmkit serve`: dynamic batching vs one request at a time (`--max-batch 1`), in the same run.

Each configuration is a real server process (`vlmkit serve --port 0`) on the same checkpoint. A client process
fires N image questions from C concurrent clients with the official `openai` async client (after a short
warm-up), and we report requests/s, p50/p95 latency and the server's mean batch size. Every request must
succeed. The speedup is the batched server's requests/s over the one-at-a-time server's. The batched server
then takes the same load as streamed requests (target: >= 0.8x its plain requests/s), and B concurrent request
bodies of M MB each (refused as too long a prompt once read): its memory before and after is reported.

    python benchmarks/bench_serve.py                   # tiny Qwen2-VL checkpoint, built on the spot
    python benchmarks/bench_serve.py --model PATH --requests 64 --concurrency 16 --max-tokens 16
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder (default: a tiny qwen2_vl built in a temp folder)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=16, help="batch bound of the batched server")
    parser.add_argument("--batch-wait-ms", type=float, default=15.0)
    parser.add_argument("--warmup", type=int, default=4, help="requests sent before timing each server")
    parser.add_argument("--bodies", type=int, default=12, help="concurrent large bodies (0: skip that part)")
    parser.add_argument("--body-mb", type=float, default=60.0, help="size of each large body (MB)")
    return parser.parse_args()


# --- server processes ------------------------------------------------------------------------------


@contextmanager
def server(model: str, *extra: str):
    """`vlmkit serve` on 127.0.0.1 and a free port; yields its base URL, stops it with Ctrl-C."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vlmkit", "serve", "--model", model, "--port", "0", "--log-level", "warning", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=300)
            if line.startswith("serving"):
                break
        yield line.split(" on ", 1)[1].split()[0], process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


# --- load --------------------------------------------------------------------------------------------


def image_urls(count: int) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # synthetic_media
    from synthetic_media import make_image

    urls = []
    for seed in range(count):
        buffer = io.BytesIO()
        make_image(64, 48, seed=seed).save(buffer, format="PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    return urls


async def load(
    url: str, model: str, requests: int, concurrency: int, max_tokens: int, warmup: int, stream: bool = False
) -> dict:
    import httpx
    import openai

    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=600)
    images = image_urls(16)

    async def ask(k: int) -> tuple[float, int]:
        started = time.perf_counter()
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": images[k % 16]}},
                    {"type": "text", "text": f"Question {k}: what is shown?"},
                ],
            }
        ]
        options = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
        reply = await client.chat.completions.create(
            model=model, max_tokens=max_tokens, temperature=0, messages=messages, **options
        )
        if stream:  # read every chunk, as a chat client does; usage comes with the last one
            usage = None
            async for chunk in reply:
                usage = chunk.usage or usage
            return time.perf_counter() - started, usage.completion_tokens
        return time.perf_counter() - started, reply.usage.completion_tokens

    await asyncio.gather(*(ask(k) for k in range(warmup)))
    before = httpx.get(f"{url}/v1/stats").json()
    todo = iter(range(requests))
    latencies, tokens, failures = [], 0, []

    async def client_loop() -> None:
        nonlocal tokens
        for k in todo:  # each of the C clients takes the next request as soon as its last one is answered
            try:
                latency, completion = await ask(k)
                latencies.append(latency)
                tokens += completion
            except Exception as exc:  # counted, and the run is reported as failed
                failures.append(f"{type(exc).__name__}: {exc}")

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    after = httpx.get(f"{url}/v1/stats").json()
    await client.close()
    batches = after["batches"] - before["batches"]
    return {
        "ok": len(latencies),
        "failed": len(failures),
        "errors": failures[:3],
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall,
        "tokens_per_s": tokens / wall,
        "p50_s": statistics.median(latencies) if latencies else float("nan"),
        "p95_s": quantile(latencies, 0.95),
        "mean_batch": (after["requests"] - before["requests"]) / max(1, batches),
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def large_bodies(url: str, model: str, pid: int, count: int, size_mb: float) -> dict:
    """`count` concurrent bodies of `size_mb` MB (one long question each); the server's RSS before and after."""
    import httpx

    text = "x" * int(size_mb * 1e6)
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": text}]}).encode()
    del text
    before = rss_mb(pid)
    async with httpx.AsyncClient(timeout=600) as client:
        replies = await asyncio.gather(
            *(
                client.post(f"{url}/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
                for _ in range(count)
            ),
            return_exceptions=True,
        )
    statuses = sorted({getattr(r, "status_code", type(r).__name__) for r in replies}, key=str)
    await asyncio.sleep(1.0)
    return {
        "bodies": count,
        "body_mb": size_mb,
        "statuses": statuses,
        "rss_before_mb": before,
        "rss_after_mb": rss_mb(pid),
    }


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- main --------------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from vlmkit.models.tiny import build_tiny

            model = str(build_tiny("qwen2_vl", Path(tmp) / "tiny-qwen2_vl"))
        name = Path(model).name if Path(model).exists() else model
        configs = {
            "max-batch 1": ["--max-batch", "1"],
            f"max-batch {args.max_batch}": [
                "--max-batch",
                str(args.max_batch),
                "--batch-wait-ms",
                str(args.batch_wait_ms),
            ],
        }
        results, memory = {}, None
        batched_label = f"max-batch {args.max_batch}"
        for label, extra in configs.items():
            with server(model, *extra, "--max-tokens", str(max(args.max_tokens, 1))) as (url, pid):
                results[label] = asyncio.run(
                    load(url, name, args.requests, args.concurrency, args.max_tokens, args.warmup)
                )
                if label == batched_label:
                    results[f"{label} stream"] = asyncio.run(
                        load(url, name, args.requests, args.concurrency, args.max_tokens, args.warmup, stream=True)
                    )
                    if args.bodies:
                        memory = asyncio.run(large_bodies(url, name, pid, args.bodies, args.body_mb))

    baseline, batched = results["max-batch 1"], results[batched_label]
    streamed = results[f"{batched_label} stream"]
    stream_ratio = streamed["requests_per_s"] / batched["requests_per_s"] if batched["requests_per_s"] else float("nan")
    speedup = batched["requests_per_s"] / baseline["requests_per_s"] if baseline["requests_per_s"] else float("nan")
    print(
        f"\n{args.requests} requests, {args.concurrency} concurrent clients, max_tokens {args.max_tokens}, "
        f"model {name}\n"
    )
    print(
        f"{'server':<21} {'ok':>4} {'failed':>6} {'req/s':>7} {'tok/s':>7} {'p50 s':>7} {'p95 s':>7} "
        f"{'mean batch':>10} {'vs max-batch 1':>15}"
    )
    for label, r in results.items():
        print(
            f"{label:<21} {r['ok']:>4} {r['failed']:>6} {r['requests_per_s']:>7.2f} {r['tokens_per_s']:>7.1f} "
            f"{r['p50_s']:>7.3f} {r['p95_s']:>7.3f} {r['mean_batch']:>10.2f} "
            f"{r['requests_per_s'] / baseline['requests_per_s']:>14.2f}x"
        )
    for label, r in results.items():
        for error in r["errors"]:
            print(f"  {label}: {error}")
    print(f"\nstreamed / plain requests/s on the batched server: {stream_ratio:.2f}x (target >= 0.8x)")
    if memory:
        print(
            f"{memory['bodies']} concurrent {memory['body_mb']:g} MB bodies (answers {memory['statuses']}): server RSS "
            f"{memory['rss_before_mb']:.0f} MB before, {memory['rss_after_mb']:.0f} MB after"
        )
    print(
        json.dumps(
            {
                "bench": "serve",
                "model": name,
                "requests": args.requests,
                "concurrency": args.concurrency,
                "max_tokens": args.max_tokens,
                "speedup": round(speedup, 3),
                "stream_vs_plain": round(stream_ratio, 3),
                "large_bodies": memory,
                "all_succeeded": all(r["failed"] == 0 and r["ok"] == args.requests for r in results.values()),
                "results": {
                    k: {m: (round(v, 4) if isinstance(v, float) else v) for m, v in r.items()}
                    for k, r in results.items()
                },
            }
        )
    )
    if any(r["failed"] for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
