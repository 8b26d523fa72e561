"""DeepSpeed ZeRO-2, ZeRO-3 and ZeRO-3 + CPU offload runs on 2 CPU processes (DS_ACCELERATOR=cpu, gloo), against DDP
with the same global batch: LoRA follows DDP's loss curve and saves one gathered adapter that loads with PeftModel;
ZeRO-3 full fine-tuning saves real (gathered) weights that load with from_pretrained. A run cut after step 3 and
continued with --resume from DeepSpeed's sharded checkpoint (checkpoint-2/global_step2) gives the same losses and the
same weights as the straight run, and `vlmkit export` merges a ZeRO-3 run into a plain checkpoint.

Opt-in: skipped without deepspeed (not in the dev extras), and slow. The first run on a machine compiles DeepSpeed's
CPU communication op (deepspeed_shm_comm; with offload also its CPU Adam) with ninja into ~/.cache/torch_extensions,
about 1.5 to 3 minutes each on 2 busy cores; later runs load them. Tolerance as for FSDP: a relative 1e-4 on the
losses (float32 reduction order) against DDP; a resumed run must equal its straight run exactly. 12 two-process runs,
about 4.5 minutes on 2 busy cores once the ops are built."""

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

from vlmkit.cli import main  # noqa: E402
from vlmkit.train.export import export_merged  # noqa: E402

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("dist_worker.py")
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "deepspeed"
TOLERANCE = 1e-4


def _run(tmp: Path, name: str, model: Path, data: Path, *, method: str, deepspeed: str | None, extra=()) -> Path:
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
    proc = subprocess.run(
        [*launcher, str(WORKER), str(path), *extra], env=env, capture_output=True, text=True, timeout=900
    )
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

    run.model, run.data, run.tmp = model, image_data, tmp
    return run


@pytest.fixture(scope="module")
def full_runs(tiny_model, image_data, tmp_path_factory):
    """Full fine-tuning under DDP and ZeRO-3, run once for the tests below."""
    tmp, model = tmp_path_factory.mktemp("deepspeed-full"), tiny_model("qwen2_vl")
    return {
        "model": model,
        "data": image_data,
        "tmp": tmp,
        "ddp": _run(tmp, "ddp", model, image_data, method="full", deepspeed=None),
        "zero3": _run(tmp, "zero3", model, image_data, method="full", deepspeed="zero3.json"),
    }


def _cut_and_resume(tmp: Path, model: Path, data: Path, *, method: str, deepspeed: str) -> Path:
    """The run stopped after step 3 (its last checkpoint is step 2's), then continued with --resume."""
    name = f"cut-{method}-{deepspeed.removesuffix('.json')}"
    run = _run(tmp, name, model, data, method=method, deepspeed=deepspeed, extra=("--stop-after", "3"))
    checkpoint = run / "checkpoints" / "checkpoint-2"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-2"]
    # DeepSpeed's own checkpoint: each rank's optimiser shard (and under ZeRO-3 its parameter shard)
    shards = sorted(p.name for p in (checkpoint / "global_step2").iterdir())
    assert sum("optim_states" in n for n in shards) == 2, shards
    _run(tmp, name, model, data, method=method, deepspeed=deepspeed, extra=("--resume",))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and Path(manifest["resumed_from"]).name == checkpoint.name
    # the engine's step counter went on from the loaded state (a fresh engine would tag step 4's save global_step2)
    assert (run / "checkpoints" / "checkpoint-4" / "global_step4").is_dir()
    return run


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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


@pytest.mark.parametrize("config", ["zero2.json", "zero3.json"])
def test_zero_lora_resume_continues_exactly(lora_runs, config):
    run = _cut_and_resume(lora_runs.tmp, lora_runs.model, lora_runs.data, method="lora", deepspeed=config)
    straight = lora_runs(config)
    assert len(_losses(run)) == 4 and _losses(run) == _losses(straight)
    a = load_file(run / "adapter" / "adapter_model.safetensors")
    assert a and _equal(a, load_file(straight / "adapter" / "adapter_model.safetensors"))


def test_zero3_lora_exports_merged(lora_runs, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    run = lora_runs("zero3.json")
    out = export_merged(run, tmp_path / "merged")
    merged = AutoModelForImageTextToText.from_pretrained(out)
    base = AutoModelForImageTextToText.from_pretrained(lora_runs.model)
    reference = PeftModel.from_pretrained(base, run / "adapter").merge_and_unload()
    assert _close(dict(merged.state_dict()), dict(reference.state_dict()))
    assert not _close(
        dict(merged.state_dict()), dict(AutoModelForImageTextToText.from_pretrained(lora_runs.model).state_dict())
    )


def test_zero3_full_finetune_saves_gathered_weights(full_runs):
    from transformers import AutoModelForImageTextToText

    model, ddp, zero3 = full_runs["model"], full_runs["ddp"], full_runs["zero3"]
    assert _losses(zero3) == pytest.approx(_losses(ddp), rel=TOLERANCE)
    trained = dict(AutoModelForImageTextToText.from_pretrained(zero3 / "model").state_dict())
    reference = dict(AutoModelForImageTextToText.from_pretrained(ddp / "model").state_dict())
    base = dict(AutoModelForImageTextToText.from_pretrained(model).state_dict())
    # every tensor whole (a ZeRO-3 shard would be empty or flat) and within Adam's lr x steps of DDP's
    assert all(trained[k].shape == base[k].shape for k in base)
    assert _close(trained, reference, atol=1e-3 * 4)
    assert not _close(trained, base)  # it trained


def test_zero3_full_finetune_exports(full_runs, tmp_path, capsys):
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "exported"
    main(["export", str(full_runs["zero3"]), "--out", str(out)])
    assert "saved merged model" in capsys.readouterr().out
    exported = dict(AutoModelForImageTextToText.from_pretrained(out).state_dict())
    saved = dict(AutoModelForImageTextToText.from_pretrained(full_runs["zero3"] / "model").state_dict())
    assert _equal(exported, saved)


def test_zero3_full_finetune_resume_continues_exactly(full_runs):
    from transformers import AutoModelForImageTextToText

    run = _cut_and_resume(
        full_runs["tmp"], full_runs["model"], full_runs["data"], method="full", deepspeed="zero3.json"
    )
    straight = full_runs["zero3"]
    assert len(_losses(run)) == 4 and _losses(run) == _losses(straight)
    a = dict(AutoModelForImageTextToText.from_pretrained(run / "model").state_dict())
    assert _equal(a, dict(AutoModelForImageTextToText.from_pretrained(straight / "model").state_dict()))
