"""Export: the merged checkpoint loads with plain from_pretrained and matches adapter-on-base exactly enough;
QLoRA runs train on a 4-bit base and merge into the full-precision one."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import base_config, write_config
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlmkit.cli import main
from vlmkit.config import config_from_dict
from vlmkit.data.collate import VlmCollator
from vlmkit.data.schema import read_samples
from vlmkit.errors import VlmkitError
from vlmkit.models.loading import load_model
from vlmkit.models.registry import get_family
from vlmkit.train import export_merged, train


def _compare(base, adapter_dir, merged_dir, samples):
    reference = load_model(base, adapter=adapter_dir)
    merged = AutoModelForImageTextToText.from_pretrained(merged_dir).eval()
    processor = AutoProcessor.from_pretrained(merged_dir)
    collator = VlmCollator(processor, reference.family)
    batch = collator(samples)
    with torch.no_grad():
        diff = (reference.model(**batch).logits - merged(**batch).logits).abs().max().item()
        prompts = collator.generation_batch(samples)
        kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
        a = reference.model.generate(**prompts, **kwargs)
        b = merged.generate(**prompts, **kwargs)
    return diff, a, b


def test_cli_train_then_export_merges_lora_extras_and_projector(tiny_model, image_data, tmp_path, capsys):
    base = tiny_model("qwen2_vl")
    config = write_config(
        tmp_path / "exp.yaml",
        base_config(
            base,
            image_data,
            tmp_path / "unused",
            optim={"lr": 3e-2},
            lora={"targets_extra": ["lm_head"]},
            freeze={"projector": False},
            train={"batch_size": 4, "max_steps": 100},
        ),
    )
    run_dir = tmp_path / "run"
    main(["train", str(config), "train.max_steps=6", f"data.eval={image_data}", "eval.every=3", "--out", str(run_dir)])
    assert "done: 6 steps" in capsys.readouterr().out
    history = json.loads((run_dir / "log_history.json").read_text())
    assert [row["step"] for row in history if "eval_loss" in row] == [3, 6, 6]  # every 3 steps + the final eval

    out = tmp_path / "merged"
    main(["export", str(run_dir), "--out", str(out)])
    assert (out / "chat_template.jinja").exists() and (out / "model.safetensors").exists()
    assert not any("lora" in k for k in json.loads((out / "config.json").read_text()))

    samples = read_samples(image_data)[:3]
    diff, a, b = _compare(base, run_dir / "adapter", out, samples)
    assert diff < 1e-4
    assert torch.equal(a, b)
    # the adapter really changed the model, so the comparison above is not vacuous
    plain = load_model(base).model
    batch = VlmCollator(AutoProcessor.from_pretrained(out), get_family("qwen2_vl"))(samples)
    with torch.no_grad():
        assert (
            plain(**batch).logits - AutoModelForImageTextToText.from_pretrained(out)(**batch).logits
        ).abs().max() > 1e-2

    with pytest.raises(VlmkitError, match="not empty"):
        export_merged(run_dir, out)


def test_tied_embeddings_with_lora_on_both_sides_export_exactly(tiny_model, image_data, tmp_path):
    """Qwen2-VL-2B ties lm_head to embed_tokens; LoRA on both must not be merged twice into the shared matrix."""
    tied = tmp_path / "tied"
    model = AutoModelForImageTextToText.from_pretrained(tiny_model("qwen2_vl"))
    model.config.tie_word_embeddings = True
    model.lm_head.weight = model.get_input_embeddings().weight
    model.save_pretrained(tied)
    AutoProcessor.from_pretrained(tiny_model("qwen2_vl")).save_pretrained(tied)

    config = config_from_dict(
        base_config(
            tied,
            image_data,
            tmp_path / "run",
            optim={"lr": 3e-2},
            lora={"targets_extra": ["lm_head", "embed_tokens"]},
            train={"batch_size": 4, "max_steps": 3},
        )
    )
    run = train(config)
    out = export_merged(run.run_dir, tmp_path / "merged")
    merged = AutoModelForImageTextToText.from_pretrained(out)
    assert merged.lm_head.weight.data_ptr() == merged.get_input_embeddings().weight.data_ptr()
    diff, a, b = _compare(tied, run.adapter_dir, out, read_samples(image_data)[:2])
    assert diff < 1e-4 and torch.equal(a, b)


def test_qlora_trains_on_a_4bit_base_and_merges_in_full_precision(tiny_model, image_data, tmp_path):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    base = tiny_model("qwen2_5_vl")
    family = get_family("qwen2_5_vl")
    seen = {}

    from transformers import TrainerCallback

    class Inspect(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen["4bit"] = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
            seen["vision"] = {
                n: p.detach().clone() for n, p in model.named_parameters() if family.group_of(n) == "vision"
            }

        def on_train_end(self, args, state, control, model=None, **kwargs):
            seen["after"] = {n: p for n, p in model.named_parameters() if n in seen["vision"]}

    config = config_from_dict(
        base_config(
            base,
            image_data,
            tmp_path / "run",
            method="qlora",
            optim={"lr": 3e-2},
            train={"batch_size": 4, "max_steps": 3},
        )
    )
    run = train(config, callbacks=[Inspect()])
    assert seen["4bit"] and all(family.group_of(n + ".weight") == "language_model" for n in seen["4bit"])
    assert all(torch.equal(seen["vision"][n], seen["after"][n]) for n in seen["vision"])
    assert run.parameters["vision"]["trainable"] == 0 and run.parameters["language_model"]["trainable"] > 0

    out = export_merged(run.run_dir, tmp_path / "merged")
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    assert json.loads((out / "export.json").read_text())["note"].startswith("QLoRA adapter merged")
    diff, a, b = _compare(base, run.adapter_dir, out, read_samples(image_data)[:2])
    assert diff < 1e-4 and torch.equal(a, b)


def test_export_refuses_what_it_cannot_merge(tmp_path):
    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir()
    with pytest.raises(VlmkitError, match="not a vlmkit run directory"):
        export_merged(run, out)
    (run / "config.yaml").write_text("method: lora\nmodel: {path: x}\n")
    with pytest.raises(VlmkitError, match="no final adapter"):
        export_merged(run, out)
    quantized = tmp_path / "q"
    quantized.mkdir()
    (quantized / "config.json").write_text(json.dumps({"model_type": "qwen2_vl", "quantization_config": {}}))
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "config.yaml").write_text(f"method: qlora\nmodel: {{path: {quantized}}}\n")
    with pytest.raises(VlmkitError, match="stored quantized; merging needs the base in full precision"):
        export_merged(run, out)
