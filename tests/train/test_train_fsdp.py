"""FSDP (FSDP2 over gloo, 2 CPU processes) against DDP with the same global batch, for LoRA and full fine-tuning:
the same loss curve, real sharding, one saved adapter / model that loads and exports, and an exact resume.

Tolerance: FSDP's reduce-scatter sums gradients in another order than DDP's all-reduce, so losses may differ in
float32 rounding; they must agree to a relative 1e-4 at every logged step (on this stack they agree exactly)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import base_config, write_config

from vlmkit.train.export import export_merged

WORKER = Path(__file__).with_name("dist_worker.py")
TOLERANCE = 1e-4


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _run(tmp: Path, name: str, model: Path, data: Path, *, method: str, fsdp: bool, extra=()) -> Path:
    out = tmp / name
    config = base_config(
        model,
        data,
        out,
        method=method,
        optim={"lr": 5e-3 if method == "lora" else 1e-3, "scheduler": "cosine", "warmup_steps": 1},
        # 2 processes x batch 1 x accumulation 2: a global batch of 4, as a one-process batch of 4 would be
        train={"batch_size": 1, "grad_accum": 2, "max_steps": 4, "seed": 3, "gradient_checkpointing": True},
        save={"every": 2, "keep_last": 3},
        distributed={"fsdp": True} if fsdp else {},
    )
    path = write_config(tmp / f"{name}.yaml", config)
    _torchrun(str(WORKER), str(path), *extra)
    return out


def _losses(run: Path) -> list[float]:
    return [row["loss"] for row in json.loads((run / "log_history.json").read_text()) if "loss" in row]


def _ranks(run: Path) -> list[dict]:
    return [json.loads((run / "logs" / f"rank-{r}.json").read_text()) for r in (0, 1)]


def _close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=TOLERANCE, atol=1e-6) for k in a)


@pytest.fixture(scope="module")
def lora_runs(tiny_model, image_data, tmp_path_factory):
    tmp, model = tmp_path_factory.mktemp("fsdp-lora"), tiny_model("qwen2_vl")
    return {
        "model": model,
        "ddp": _run(tmp, "ddp", model, image_data, method="lora", fsdp=False),
        "fsdp": _run(tmp, "fsdp", model, image_data, method="lora", fsdp=True),
        "tmp": tmp,
        "data": image_data,
    }


def test_fsdp_lora_matches_ddp_and_shards(lora_runs):
    ddp, fsdp = lora_runs["ddp"], lora_runs["fsdp"]
    assert len(_losses(fsdp)) == 4
    assert _losses(fsdp) == pytest.approx(_losses(ddp), rel=TOLERANCE)
    assert json.loads((fsdp / "manifest.json").read_text())["status"] == "finished"
    # each process holds half of every parameter under FSDP, all of it under DDP
    assert [r["local_parameters"] * 2 for r in _ranks(fsdp)] == [r["parameters"] for r in _ranks(fsdp)]
    assert [r["local_parameters"] for r in _ranks(ddp)] == [r["parameters"] for r in _ranks(ddp)]
    # the adapter is written once, gathered (not a shard), and equals DDP's
    a = load_file(fsdp / "adapter" / "adapter_model.safetensors")
    b = load_file(ddp / "adapter" / "adapter_model.safetensors")
    assert a and _close(a, b)


def test_fsdp_lora_adapter_loads_and_exports(lora_runs, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    fsdp = lora_runs["fsdp"]
    base = AutoModelForImageTextToText.from_pretrained(lora_runs["model"])
    peft_model = PeftModel.from_pretrained(base, fsdp / "adapter")
    trained = load_file(fsdp / "adapter" / "adapter_model.safetensors")
    loaded = {k: v for k, v in peft_model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(trained) and any(v.abs().sum() > 0 for k, v in loaded.items() if "lora_B" in k)
    out = export_merged(fsdp, tmp_path / "merged")
    merged = AutoModelForImageTextToText.from_pretrained(out)
    reference = peft_model.merge_and_unload()
    assert _close(dict(merged.state_dict()), dict(reference.state_dict()))


def test_fsdp_resume_continues_exactly(lora_runs):
    tmp, model, data = lora_runs["tmp"], lora_runs["model"], lora_runs["data"]
    run = _run(tmp, "cut", model, data, method="lora", fsdp=True, extra=("--stop-after", "3"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-2"]
    _run(tmp, "cut", model, data, method="lora", fsdp=True, extra=("--resume",))
    straight = lora_runs["fsdp"]
    assert _losses(run) == _losses(straight)
    a = load_file(run / "adapter" / "adapter_model.safetensors")
    b = load_file(straight / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fsdp_full_finetune_matches_ddp_and_exports(tiny_model, image_data, tmp_path):
    from transformers import AutoModelForImageTextToText

    model = tiny_model("qwen2_vl")
    ddp = _run(tmp_path, "ddp", model, image_data, method="full", fsdp=False)
    fsdp = _run(tmp_path, "fsdp", model, image_data, method="full", fsdp=True)
    assert _losses(fsdp) == pytest.approx(_losses(ddp), rel=TOLERANCE)
    assert [r["local_parameters"] * 2 for r in _ranks(fsdp)] == [r["parameters"] for r in _ranks(fsdp)]
    trained = AutoModelForImageTextToText.from_pretrained(fsdp / "model")
    reference = AutoModelForImageTextToText.from_pretrained(ddp / "model")
    base = AutoModelForImageTextToText.from_pretrained(model)
    # Adam divides by the gradient's own size, so a rounding-level gradient difference on a near-zero element can
    # move it by up to lr per step: the weights agree to lr x steps, the loss curve (above) to float rounding
    diff = max(
        (a - b).abs().max().item() for a, b in zip(trained.state_dict().values(), reference.state_dict().values())
    )
    assert diff <= 1e-3 * 4
    assert not _close(dict(trained.state_dict()), dict(base.state_dict()))  # it trained
    out = export_merged(fsdp, tmp_path / "exported")
    assert _close(dict(AutoModelForImageTextToText.from_pretrained(out).state_dict()), dict(trained.state_dict()))
