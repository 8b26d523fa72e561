"""A stand-in for vLLM's OpenAI server (`python -m vllm.entrypoints.openai.api_server`) for the launcher's tests.

It parses the arguments vLLM's server takes (the real names; an unknown one fails as vLLM would), writes the
argv and the VLLM_* environment it got to $VLLM_STANDIN_RECORD (JSON), and serves tests/fake_openai.py's
OpenAI-compatible API with /health and /version on --host/--port, accepting the served model names and LoRA
module names only. $VLLM_STANDIN_MODE picks a behaviour:

    ok      serve (the default)               slow    sleep $VLLM_STANDIN_DELAY s (default 60) before serving
    crash   print an error and exit 1          hang    never serve, and ignore SIGTERM (only SIGKILL stops it)

$VLLM_STANDIN_CHILD=1 also starts a child process (as vLLM starts its engine core) whose pid is recorded, so a
test can check that stopping the server leaves no process behind; $VLLM_STANDIN_LATENCY delays each answer;
$VLLM_STANDIN_DIE_AFTER=N makes the server exit (code 3) when asked for answer N + 1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vllm.entrypoints.openai.api_server")
    p.add_argument("--model", required=True)
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--dtype", default="auto", choices=["auto", "half", "float16", "bfloat16", "float", "float32"])
    p.add_argument("--served-model-name", nargs="+", default=None)
    p.add_argument("--enable-lora", action="store_true")
    p.add_argument("--lora-modules", nargs="+", default=None)
    p.add_argument("--max-lora-rank", type=int, choices=[1, 8, 16, 32, 64, 128, 256, 320, 512], default=16)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--limit-mm-per-prompt", type=json.loads, default=None)
    p.add_argument("--mm-processor-kwargs", type=json.loads, default=None)
    p.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    p.add_argument("--pipeline-parallel-size", "-pp", type=int, default=1)
    p.add_argument("--data-parallel-size", "-dp", type=int, default=1)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--quantization", "-q", default=None)
    return p


def main() -> None:
    args = parser().parse_args()
    mode = os.environ.get("VLLM_STANDIN_MODE", "ok")
    child = None
    if os.environ.get("VLLM_STANDIN_CHILD") == "1":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    record = os.environ.get("VLLM_STANDIN_RECORD")
    if record:
        env = {k: v for k, v in os.environ.items() if k.startswith("VLLM_") and not k.startswith("VLLM_STANDIN")}
        with open(record, "w", encoding="utf-8") as f:
            json.dump({"argv": sys.argv[1:], "env": env, "pid": os.getpid(), "child": child and child.pid}, f)
    print(f"INFO stand-in vLLM for {args.model} (mode {mode})", flush=True)
    if mode == "crash":
        print("ValueError: the stand-in was told to crash while loading the model", file=sys.stderr, flush=True)
        sys.exit(1)
    if mode == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)
    if mode == "slow":
        time.sleep(float(os.environ.get("VLLM_STANDIN_DELAY", "60")))

    from fake_openai import FakeOpenAI, echo

    names = list(args.served_model_name or [args.model])
    names += [module.split("=", 1)[0] for module in args.lora_modules or []]
    die_after = int(os.environ.get("VLLM_STANDIN_DIE_AFTER", "0"))
    answered = []

    def answer(body: dict) -> str:  # echo, or a crash of the whole server after `die_after` answers
        if die_after and len(answered) >= die_after:
            print("RuntimeError: the stand-in engine core died", file=sys.stderr, flush=True)
            os._exit(3)
        answered.append(1)
        return echo(body)

    latency = float(os.environ.get("VLLM_STANDIN_LATENCY", "0"))
    server = FakeOpenAI(
        port=args.port, models=tuple(names), model=names[0], version="0.32.0+standin", latency=latency, answer=answer
    )
    server.start()
    print(f"INFO serving {names} on http://{args.host}:{args.port}", flush=True)

    def stop(signum: int, frame: object) -> None:  # the child is left to the process group's signal
        server.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
