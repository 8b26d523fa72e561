"""`--engine vllm`: the launcher's lifecycle against a stand-in vLLM server (tests/vllm_standin), a real child
process started through a wrapper interpreter exactly as vLLM's would be: the arguments built from a run,
health timeout, a crash while starting, a server that ignores SIGTERM, no process left behind after errors or
after vlmkit itself is killed with SIGTERM, resume, and `vlmkit serve --engine vllm` streaming through it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlmkit.data.media_settings import MediaSettings
from vlmkit.data.schema import DatasetWriter, Sample
from vlmkit.errors import ConfigError, VlmkitError
from vlmkit.infer import GenerationParams
from vlmkit.infer.options import EngineOptions, VllmSettings
from vlmkit.infer.vllm_launcher import adapter_rank, vllm_args, vllm_lora_rank

TESTS = Path(__file__).resolve().parents[1]
STANDIN = TESTS / "vllm_standin"
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
ECHO_TASK = "name: echo\nmetrics: [exact_match]\nprompt: '{question}'\ngeneration: {max_new_tokens: 8}\n"


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def vllm_python(tmp_path) -> Path:
    """An 'interpreter' as vLLM's environment would have: this Python with the stand-in package on its path."""
    wrapper = tmp_path / "vllm-env" / "python"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{STANDIN}:{TESTS}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def model_folder(root: Path, model_type: str = "qwen2_vl", max_positions: int = 4096) -> Path:
    root.mkdir(parents=True)
    config = {"model_type": model_type, "text_config": {"max_position_embeddings": max_positions}}
    (root / "config.json").write_text(json.dumps(config))
    return root


def adapter_folder(root: Path, rank: int, pattern: dict | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "adapter_config.json").write_text(json.dumps({"r": rank, "rank_pattern": pattern or {}}))
    return root


def dataset(root: Path, n: int, images: Path | None = None) -> Path:
    root.parent.mkdir(parents=True, exist_ok=True)
    (root.parent / "echo.yaml").write_text(ECHO_TASK)
    with DatasetWriter(root) as writer:
        for i in range(n):
            content: list = [{"type": "text", "text": f"q{i}"}]
            if images is not None:
                content = [{"type": "image", "image": str(images)}] * (1 + i % 3) + content
            writer.write(
                Sample(id=f"s{i:03d}", messages=[{"role": "user", "content": content}], answers=[f"echo: q{i}"])
            )
    return root


def alive(pid: int | None) -> bool:
    """Running (a zombie, dead but not yet reaped by init, is not)."""
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def standin_parser():
    sys.path.insert(0, str(STANDIN))
    try:
        from vllm.entrypoints.openai.api_server import parser
    finally:
        sys.path.remove(str(STANDIN))
    return parser()


def load(model, vllm_python, tmp_path, *, adapter=None, media=None, **settings):
    options = EngineOptions(
        engine="vllm",
        media=media or MediaSettings(),
        vllm=VllmSettings(python=str(vllm_python), log_file=str(tmp_path / "logs" / "vllm.log"), **settings),
    )
    return options.load(str(model), adapter)


# --- arguments -----------------------------------------------------------------------------------
def test_lora_rank_is_read_from_the_adapter_and_rounded_up_to_a_rank_vllm_accepts(tmp_path):
    assert adapter_rank(adapter_folder(tmp_path / "a", 8)) == 8
    assert adapter_rank(adapter_folder(tmp_path / "b", 8, {"q_proj": 24})) == 24  # per-module ranks count
    assert [vllm_lora_rank(r) for r in (1, 2, 8, 12, 16, 48, 300)] == [1, 8, 8, 16, 16, 64, 320]
    with pytest.raises(ConfigError, match="above the largest"):
        vllm_lora_rank(600)
    with pytest.raises(ConfigError, match="no adapter_config.json"):
        adapter_rank(tmp_path)


def test_an_adapter_vllm_cannot_load_as_a_lora_module_is_refused_with_the_merged_export_hint(tmp_path):
    import torch
    from safetensors.torch import save_file

    qwen = model_folder(tmp_path / "qwen")
    lm = "base_model.model.model.language_model.layers.0.self_attn.q_proj"
    for name, extra in (("lm", {}), ("dora", {"use_dora": True})):
        adapter = adapter_folder(tmp_path / name, 8)
        config = json.loads((adapter / "adapter_config.json").read_text())
        (adapter / "adapter_config.json").write_text(json.dumps({**config, **extra}))
        tensors = {f"{lm}.lora_A.weight": torch.zeros(8, 16), f"{lm}.lora_B.weight": torch.zeros(16, 8)}
        save_file(tensors, str(adapter / "adapter_model.safetensors"))
    args = vllm_args(str(qwen), served_name="run", port=1, adapter=str(tmp_path / "lm"))
    assert "--enable-lora" in args  # a language-model adapter is a LoRA module
    with pytest.raises(ConfigError, match="DoRA.*vlmkit export"):
        vllm_args(str(qwen), served_name="run", port=1, adapter=str(tmp_path / "dora"))


def test_arguments_carry_the_runs_adapter_media_lengths_and_pass_through_last(tmp_path):
    qwen = model_folder(tmp_path / "qwen")
    adapter = adapter_folder(tmp_path / "adapter", 12)
    media = MediaSettings(min_pixels=3136, max_pixels=200_704, nframes=8)
    args = vllm_args(
        str(qwen),
        served_name="ft",
        port=8123,
        adapter=str(adapter),
        dtype="float32",
        media=media,
        max_model_len=2048,
        images_per_prompt=2,
        videos_per_prompt=1,
        extra=["--tensor-parallel-size=2", "--max-model-len", "4096"],
    )
    parsed = standin_parser().parse_args(args)  # vLLM's own names: the stand-in parses them as vLLM does
    assert parsed.model == str(qwen) and parsed.port == 8123 and parsed.host == "127.0.0.1"
    assert parsed.dtype == "float32" and parsed.enable_lora and parsed.max_lora_rank == 16
    assert parsed.lora_modules == [f"ft={adapter}"] and parsed.served_model_name == ["ft-base"]
    assert parsed.limit_mm_per_prompt == {"image": 2 + 8, "video": 0}  # a video goes as its 8 sampled frames
    assert parsed.mm_processor_kwargs == {"min_pixels": 3136, "max_pixels": 200_704}
    assert parsed.tensor_parallel_size == 2 and parsed.max_model_len == 4096  # --vllm-arg comes last and wins

    llava = model_folder(tmp_path / "llava", "llava")  # a fixed-size processor: no pixel bounds for it
    plain = standin_parser().parse_args(vllm_args(str(llava), served_name="m", port=1, media=media))
    assert plain.mm_processor_kwargs is None and plain.served_model_name == ["m"] and not plain.enable_lora
    assert plain.limit_mm_per_prompt is None and plain.max_model_len is None
    counted = vllm_args(str(llava), served_name="m", port=1, media=media, images_per_prompt=3, videos_per_prompt=0)
    assert standin_parser().parse_args(counted).limit_mm_per_prompt == {"image": 3}  # LLaVA takes no video


def test_options_refuse_what_vllm_does_not_take():
    with pytest.raises(ConfigError, match="--engine vllm"):
        EngineOptions(engine="hf", vllm=VllmSettings(python="/x/python"))
    with pytest.raises(ConfigError, match="--vllm-arg"):
        EngineOptions(engine="vllm", quantization="4bit")
    from vlmkit.infer.options import EndpointSettings

    with pytest.raises(ConfigError, match="--base-url"):
        EngineOptions(engine="vllm", endpoint=EndpointSettings(base_url="http://127.0.0.1:1/v1"))
    assert EngineOptions(engine="vllm", dtype="float32").dtype == "float32"  # vLLM takes --dtype


def test_no_interpreter_is_a_usage_error_with_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.delenv("VLMKIT_VLLM_PYTHON", raising=False)
    with pytest.raises(ConfigError, match="--vllm-python"):
        load(model_folder(tmp_path / "m"), None, tmp_path)
    with pytest.raises(ConfigError, match="not an executable"):
        load(model_folder(tmp_path / "m2"), tmp_path / "missing", tmp_path)


def test_under_torchrun_eval_refuses_before_starting_vllm(tmp_path, vllm_python, monkeypatch):
    from vlmkit.eval.suite import SuiteRun, evaluate_suite

    record = tmp_path / "record.json"
    monkeypatch.setenv("VLLM_STANDIN_RECORD", str(record))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    data = dataset(tmp_path / "data", 2)
    options = EngineOptions(engine="vllm", vllm=VllmSettings(python=str(vllm_python)))
    with pytest.raises(VlmkitError, match="--engine vllm runs no model in this process"):
        evaluate_suite(
            str(model_folder(tmp_path / "m")),
            [SuiteRun(str(data.parent / "echo.yaml"), data)],
            tmp_path / "run",
            engine_options=options,
        )
    assert not record.exists()  # refused before anything was launched


# --- lifecycle -----------------------------------------------------------------------------------
def test_generate_and_stream_through_the_launched_server_then_stop_it(tmp_path, vllm_python, monkeypatch):
    record = tmp_path / "record.json"
    monkeypatch.setenv("VLLM_STANDIN_RECORD", str(record))
    monkeypatch.setenv("VLLM_STANDIN_CHILD", "1")
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.setenv("VLLM_CPU_NUM_OF_RESERVED_CPU", "3")  # set by the user: kept
    engine = load(model_folder(tmp_path / "m"), vllm_python, tmp_path, adapter=adapter_folder(tmp_path / "a", 8))
    try:
        seen = json.loads(record.read_text())
        assert seen["env"] == {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "3"}  # a CPU build
        samples = [Sample(id=f"s{i}", messages=[{"role": "user", "content": f"question {i}"}]) for i in range(5)]
        results = engine.generate(samples, GenerationParams(max_new_tokens=8))
        assert [r.text for r in results] == [f"echo: question {i}" for i in range(5)]  # asked of the LoRA module
        assert engine.stream(samples[0]).text() == "echo: question 0"
        info = engine.info()
        assert info["backend"] == "vllm" and info["vllm"]["version"] == "0.32.0+standin"
        assert info["vllm"]["args"] == seen["argv"] and info["base_url"] is None
        assert Path(info["vllm"]["log"]) == tmp_path / "logs" / "vllm.log"
        assert "stand-in vLLM" in (tmp_path / "logs" / "vllm.log").read_text()
        assert alive(seen["pid"]) and alive(seen["child"])
    finally:
        engine.close()
    assert not alive(seen["pid"]) and not alive(seen["child"])  # the whole process group went


def test_health_timeout_names_the_log_and_shows_its_end_and_stops_the_server(tmp_path, vllm_python, monkeypatch):
    record = tmp_path / "record.json"
    monkeypatch.setenv("VLLM_STANDIN_RECORD", str(record))
    monkeypatch.setenv("VLLM_STANDIN_MODE", "slow")
    with pytest.raises(VlmkitError) as caught:
        load(model_folder(tmp_path / "m"), vllm_python, tmp_path, start_timeout=1.5)
    message = str(caught.value)
    assert "did not become healthy within 1.5 s" in message and "--vllm-start-timeout" in message
    assert str(tmp_path / "logs" / "vllm.log") in message and "stand-in vLLM for" in message  # the log's tail
    assert not alive(json.loads(record.read_text())["pid"])


def test_a_crash_while_starting_shows_the_error_from_the_log(tmp_path, vllm_python, monkeypatch):
    monkeypatch.setenv("VLLM_STANDIN_MODE", "crash")
    with pytest.raises(VlmkitError, match="exited with code 1 while starting") as caught:
        load(model_folder(tmp_path / "m"), vllm_python, tmp_path)
    assert "told to crash while loading the model" in str(caught.value)


def test_a_server_that_ignores_sigterm_is_killed(tmp_path, vllm_python, monkeypatch):
    record = tmp_path / "record.json"
    monkeypatch.setenv("VLLM_STANDIN_RECORD", str(record))
    monkeypatch.setenv("VLLM_STANDIN_MODE", "hang")
    monkeypatch.setenv("VLLM_STANDIN_CHILD", "1")
    monkeypatch.setattr("vlmkit.infer.vllm_launcher.STOP_GRACE_S", 1.0)
    with pytest.raises(VlmkitError, match="did not become healthy"):
        load(model_folder(tmp_path / "m"), vllm_python, tmp_path, start_timeout=1.0)
    seen = json.loads(record.read_text())
    assert not alive(seen["pid"]) and not alive(seen["child"])


# --- the verbs, as real subprocesses ---------------------------------------------------------------
def _eval(vllm_python, model, data, out, *extra, wait=True, env=None):
    args = [
        sys.executable,
        "-m",
        "vlmkit",
        "eval",
        "--engine",
        "vllm",
        "--vllm-python",
        str(vllm_python),
        "--model",
        str(model),
        "--task",
        str(data.parent / "echo.yaml"),
        "--data",
        str(data),
        "--out",
        str(out),
        "--no-plots",
        "--no-progress",
        *map(str, extra),
    ]
    env = {**ENV, **(env or {})}
    if not wait:  # Ctrl-C's default restored (a shell may start background jobs with SIGINT ignored)
        restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
        return subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=restore
        )
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_eval_records_vllm_in_the_manifest_and_resumes(tmp_path, images, vllm_python):
    model, adapter = model_folder(tmp_path / "m"), adapter_folder(tmp_path / "adapter", 32)
    data = dataset(tmp_path / "data", 6, images=images[0])
    out, record = tmp_path / "run", tmp_path / "record.json"
    env = {"VLLM_STANDIN_RECORD": str(record)}
    run = _eval(vllm_python, model, data, out, "--adapter", adapter, "--max-pixels", 50_000, env=env)
    assert run.returncode == 0, run.stderr
    assert f"its log: {out / 'logs' / 'vllm.log'}" in run.stderr
    parsed = standin_parser().parse_args(json.loads(record.read_text())["argv"])
    assert parsed.limit_mm_per_prompt == {"image": 3, "video": 0}  # the most images one sample of the data holds
    assert parsed.mm_processor_kwargs == {"max_pixels": 50_000} and parsed.max_lora_rank == 32
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"]["vllm"]["version"] == "0.32.0+standin"
    assert manifest["engine"]["vllm"]["args"] == json.loads(record.read_text())["argv"]
    assert manifest["fingerprint"]["adapter"] is not None  # local weights: fingerprinted and checked on resume
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["prediction"] for r in rows) == sorted(f"echo: q{i}" for i in range(6))
    assert not alive(json.loads(record.read_text())["pid"])

    (adapter / "adapter_config.json").write_text(json.dumps({"r": 16}))  # another adapter: refused on resume
    refused = _eval(vllm_python, model, data, out, "--adapter", adapter, "--max-pixels", 50_000)
    assert refused.returncode == 2 and "different fingerprint" in refused.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "ctrl-c"])
def test_a_signal_to_vlmkit_eval_leaves_no_vllm_process_and_the_run_resumes(tmp_path, vllm_python, sig):
    model, data, out = model_folder(tmp_path / "m"), dataset(tmp_path / "data", 40), tmp_path / "run"
    record = tmp_path / "record.json"
    env = {"VLLM_STANDIN_RECORD": str(record), "VLLM_STANDIN_CHILD": "1", "VLLM_STANDIN_LATENCY": "0.1"}
    process = _eval(vllm_python, model, data, out, "--concurrency", "1", "--batch-size", "1", wait=False, env=env)
    predictions = out / "predictions.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not predictions.exists() or predictions.read_text().count("\n") < 5):
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    seen = json.loads(record.read_text())
    assert alive(seen["pid"]) and alive(seen["child"])
    process.send_signal(sig)
    assert process.wait(timeout=60) != 0
    deadline = time.time() + 30  # the group gets SIGTERM at once; SIGKILL follows after the grace period
    while time.time() < deadline and (alive(seen["pid"]) or alive(seen["child"])):
        time.sleep(0.1)
    assert not alive(seen["pid"]) and not alive(seen["child"])
    done = predictions.read_text().count("\n")
    assert 5 <= done < 40

    again = _eval(vllm_python, model, data, out, env={"VLLM_STANDIN_RECORD": str(record)})
    assert again.returncode == 0, again.stderr
    ids = [json.loads(line)["id"] for line in predictions.read_text().splitlines()]
    assert sorted(ids) == [f"s{i:03d}" for i in range(40)]  # every sample exactly once
    assert f"{40 - done} new predictions" in again.stdout


@pytest.mark.slow
def test_vllm_dying_mid_run_ends_eval_with_its_log_and_the_run_resumes(tmp_path, vllm_python):
    model, data, out = model_folder(tmp_path / "m"), dataset(tmp_path / "data", 20), tmp_path / "run"
    env = {"VLLM_STANDIN_DIE_AFTER": "6"}  # batches of 4: one is written, the second dies half-way
    args = ("--concurrency", "1", "--batch-size", "4", "--max-retries", "1")
    died = _eval(vllm_python, model, data, out, *args, env=env)
    assert died.returncode == 2 and "vLLM exited with code 3 while answering" in died.stderr
    assert "the stand-in engine core died" in died.stderr  # the log's tail, in the error
    assert "failed" not in died.stderr  # not retried sample by sample
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and not any(r.get("error") for r in rows)  # the first batch; none recorded as failed
    again = _eval(vllm_python, model, data, out)
    assert again.returncode == 0, again.stderr
    ids = [json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(ids) == [f"s{i:03d}" for i in range(20)]


@pytest.mark.slow
def test_infer_puts_the_log_beside_the_predictions(tmp_path, images, vllm_python):
    model, data = model_folder(tmp_path / "m"), dataset(tmp_path / "data", 4, images=images[1])
    out, record = tmp_path / "preds" / "p.jsonl", tmp_path / "record.json"
    args = [sys.executable, "-m", "vlmkit", "infer", "--engine", "vllm", "--vllm-python", str(vllm_python)]
    args += ["--model", str(model), "--data", str(data), "--out", str(out), "--no-progress"]
    run = subprocess.run(args, env={**ENV, "VLLM_STANDIN_RECORD": str(record)}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    log = tmp_path / "preds" / "p.vllm.log"
    assert f"its log: {log}" in run.stderr and "stand-in vLLM" in log.read_text()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["prediction"] for r in rows) == [f"echo: q{i}" for i in range(4)]
    parsed = standin_parser().parse_args(json.loads(record.read_text())["argv"])
    assert parsed.limit_mm_per_prompt == {"image": 3, "video": 0}
    assert not alive(json.loads(record.read_text())["pid"])


@pytest.mark.slow
def test_a_resume_with_other_vllm_arguments_is_refused_by_eval_and_infer(tmp_path, images, vllm_python):
    """--vllm-arg can change the answers (--quantization, --max-model-len, --tokenizer, ...): a run resumed with
    other pass-through arguments would mix two servers' answers in one file, so both verbs refuse it, and the same
    arguments (vLLM on a new port) resume."""
    model, data = model_folder(tmp_path / "m"), dataset(tmp_path / "data", 4, images=images[1])
    out = tmp_path / "run"
    assert _eval(vllm_python, model, data, out, "--vllm-arg=--quantization=fp8").returncode == 0
    # the same arguments however spelled, and flags that only size the server (--gpu-memory-utilization after an
    # out-of-memory), resume
    same = _eval(vllm_python, model, data, out, "--vllm-arg=--quantization", "--vllm-arg=fp8")
    assert same.returncode == 0, same.stderr
    sized = _eval(
        vllm_python, model, data, out, "--vllm-arg=--quantization=fp8", "--vllm-arg=--gpu-memory-utilization=0.5"
    )
    assert sized.returncode == 0, sized.stderr
    for other in (["--vllm-arg=--quantization=awq"], []):
        refused = _eval(vllm_python, model, data, out, *other)
        assert refused.returncode == 2 and "different engine.vllm_args" in refused.stderr, refused.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["engine"]["vllm_args"]  # as written before the arguments were recorded: resumes, unknown then
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert _eval(vllm_python, model, data, out, "--vllm-arg=--quantization=awq").returncode == 0

    preds = tmp_path / "preds.jsonl"
    infer = [sys.executable, "-m", "vlmkit", "infer", "--engine", "vllm", "--vllm-python", str(vllm_python)]
    infer += ["--model", str(model), "--data", str(data), "--out", str(preds), "--no-progress"]
    assert subprocess.run([*infer, "--vllm-arg=-q=fp8"], env=ENV, capture_output=True).returncode == 0
    assert subprocess.run([*infer, "--vllm-arg=-q=fp8"], env=ENV, capture_output=True).returncode == 0
    refused = subprocess.run([*infer, "--vllm-arg=-q=awq"], env=ENV, capture_output=True, text=True)
    assert refused.returncode == 2 and "vllm_args: ['-q=fp8'] then, ['-q=awq'] now" in refused.stderr, refused.stderr


@pytest.mark.slow
def test_serve_with_vllm_keeps_its_guards_and_passes_streams_through(tmp_path, vllm_python):
    import httpx
    from openai import OpenAI

    model, record = model_folder(tmp_path / "m", max_positions=4096), tmp_path / "record.json"
    env = {**ENV, "VLLM_STANDIN_RECORD": str(record), "VLMKIT_API_KEY": "serve-key-123"}
    args = [sys.executable, "-m", "vlmkit", "serve", "--engine", "vllm", "--vllm-python", str(vllm_python)]
    args += ["--model", str(model), "--port", "0", "--served-model-name", "ft", "--max-tokens", "256"]
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "serving ft on http://" in line, process.stderr.read() if process.poll() is not None else line
        url = line.split(" on ")[1].split()[0]
        parsed = standin_parser().parse_args(json.loads(record.read_text())["argv"])
        assert parsed.max_model_len == 4096 and parsed.served_model_name == ["ft"]  # 8192 + 256 capped by the model
        assert parsed.limit_mm_per_prompt == {"image": 16, "video": 0}  # the server's media-per-request limit

        client = OpenAI(base_url=f"{url}/v1", api_key="serve-key-123", max_retries=0)
        messages = [{"role": "user", "content": "one two three four"}]
        chunks = list(
            client.chat.completions.create(
                model="ft", messages=messages, stream=True, stream_options={"include_usage": True}
            )
        )
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert pieces == ["echo:", " one", " two", " three", " four"]  # vLLM's pieces, passed through one by one
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
        answer = client.chat.completions.create(model="ft", messages=messages)
        assert answer.choices[0].message.content == "echo: one two three four"

        import openai

        with pytest.raises(openai.AuthenticationError):  # vlmkit's front still guards the route
            OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).chat.completions.create(
                model="ft", messages=messages
            )
        with pytest.raises(openai.BadRequestError, match="max_tokens"):
            client.chat.completions.create(model="ft", messages=messages, max_tokens=1000)
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        os.kill(json.loads(record.read_text())["pid"], signal.SIGKILL)  # vLLM dies under the server
        deadline = time.time() + 30
        while time.time() < deadline and httpx.get(f"{url}/health", timeout=10).status_code == 200:
            time.sleep(0.1)
        health = httpx.get(f"{url}/health", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "engine down"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    seen = json.loads(record.read_text())
    deadline = time.time() + 30
    while time.time() < deadline and alive(seen["pid"]):
        time.sleep(0.1)
    assert not alive(seen["pid"])
