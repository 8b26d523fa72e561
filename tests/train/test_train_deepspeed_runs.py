"""DeepSpeed ZeRO-2, ZeRO-3 and ZeRO-3 + CPU offload runs on 2 CPU processes (DS_ACCELERATOR=cpu, gloo), against DDP
with the same global batch: LoRA follows DDP's loss curve and saves one gathered adapter that loads with PeftModel;
ZeRO-3 full fine-tuning saves real (gathered) weights that load with from_pretrained.

Opt-in: skipped without deepspeed (not in the dev extras), and slow. The first run on a machine compiles DeepSpeed's
CPU communication op (deepspeed_shm_comm; with offload also its CPU Adam) with ninja into ~/.cache/torch_extensions,
about 1.5 to 3 minutes each on 2 busy cores; later runs load them. Tolerance as for FSDP: a relative 1e-4 on the
losses (float32 reduction order)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from train_helpers import base_config, write_config  # noqa: E402

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("dist_worker.py")
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "deepspeed"
TOLERANCE = 1e-4


def _run(tmp: Path, name: str, model: Path, data: Path, *, method: str, deepspeed: str | None) -> Path:
    out = tmp / name
    config = base_config(
        model,
        data,
        out,
        method=method,
        optim={"lr": 5e-3 if method == "lora" else 1e-3, "scheduler": "cosine", "warmup_steps": 1},
        # 2 processes x batch 1 x accumulation 2: a global batch of 4
        train={"batch_size": 1, "grad_accum": 2, "max_steps": 4, "seed": 3},
        save={"every": 2, "keep_last": 3},
        distributed={"deepspeed": str(CONFIGS / deepspeed)} if deepspeed else {},
    )
    path = write_config(tmp / f"{name}.yaml", config)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    proc = subprocess.run([*launcher, str(WORKER), str(path)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _losses(run: Path) -> list[float]:
    return [row["loss"] for row in json.loads((run / "log_history.json").read_text()) if "loss" in row]


def _close(a: dict, b: dict, atol: float = 1e-6) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and torch.allclose(a[k], b[k], rtol=TOLERANCE, atol=atol) for k in a
    )


@pytest.fixture(scope="module")
def lora_runs(tiny_model, image_data, tmp_path_factory):
    """Factory: lora_runs(name) -> the run folder of a LoRA run with that DeepSpeed config (None: DDP), run once."""
    tmp, model, done = tmp_path_factory.mktemp("deepspeed-lora"), tiny_model("qwen2_vl"), {}

    def run(config: str | None) -> Path:
        if config not in done:
            name = config.removesuffix(".json") if config else "ddp"
            done[config] = _run(tmp, name, model, image_data, method="lora", deepspeed=config)
        return done[config]

    run.model = model
    return run


@pytest.mark.parametrize("config", ["zero2.json", "zero3.json", "zero3_offload.json"])
def test_zero_lora_follows_ddp_and_saves_one_gathered_adapter(lora_runs, config):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    run, ddp = lora_runs(config), lora_runs(None)
    assert len(_losses(run)) == 4
    assert _losses(run) == pytest.approx(_losses(ddp), rel=TOLERANCE)
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"
    trained = load_file(run / "adapter" / "adapter_model.safetensors")
    assert trained and _close(trained, load_file(ddp / "adapter" / "adapter_model.safetensors"))  # full tensors
    base = AutoModelForImageTextToText.from_pretrained(lora_runs.model)
    loaded = {k: v for k, v in PeftModel.from_pretrained(base, run / "adapter").state_dict().items() if "lora_" in k}
    assert len(loaded) == len(trained) and any(v.abs().sum() > 0 for k, v in loaded.items() if "lora_B" in k)


def test_zero3_full_finetune_saves_gathered_weights(tiny_model, image_data, tmp_path):
    from transformers import AutoModelForImageTextToText

    model = tiny_model("qwen2_vl")
    ddp = _run(tmp_path, "ddp", model, image_data, method="full", deepspeed=None)
    zero3 = _run(tmp_path, "zero3", model, image_data, method="full", deepspeed="zero3.json")
    assert _losses(zero3) == pytest.approx(_losses(ddp), rel=TOLERANCE)
    trained = dict(AutoModelForImageTextToText.from_pretrained(zero3 / "model").state_dict())
    reference = dict(AutoModelForImageTextToText.from_pretrained(ddp / "model").state_dict())
    base = dict(AutoModelForImageTextToText.from_pretrained(model).state_dict())
    # every tensor whole (a ZeRO-3 shard would be empty or flat) and within Adam's lr x steps of DDP's
    assert all(trained[k].shape == base[k].shape for k in base)
    assert _close(trained, reference, atol=1e-3 * 4)
    assert not _close(trained, base)  # it trained
