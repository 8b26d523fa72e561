"""What vlmkit writes loads in vLLM as saved, checked by key names (no vLLM needed): tiny checkpoints and exports
take the family's released key layout (LLaVA: `vision_tower.vision_model.*`, which vLLM 0.32's llava loader
expects), transformers still loads them to the same weights and logits, and `vlmkit train`'s default adapter
adapts only the language-model linears vLLM serves as a LoRA module."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from train_helpers import base_config, write_config
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlmkit.cli import main
from vlmkit.data.collate import VlmCollator
from vlmkit.data.schema import read_samples
from vlmkit.models.base import LM_LINEAR
from vlmkit.models.interop import adapter_modules, vllm_lora_problems, write_released_layout
from vlmkit.models.loading import load_model
from vlmkit.models.registry import get_family

# The weight names vLLM 0.32's LlavaForConditionalGeneration loads (after its transformers>=4.52 prefix mapper):
# CLIPVisionModel under vision_tower keeps its vision_model level.
VLLM_LLAVA_KEY = re.compile(
    r"^(?:vision_tower\.vision_model\.(?:embeddings|pre_layrnorm|encoder\.layers\.\d+|post_layernorm)\."
    r"|multi_modal_projector\.linear_[12]\."
    r"|language_model\.(?:model\.(?:embed_tokens|layers\.\d+|norm)\.|lm_head\.))"
)


def saved_keys(folder) -> list[str]:
    keys = []
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            keys += list(handle.keys())
    return keys


def to_transformers_layout(folder) -> None:
    """Rewrite a LLaVA checkpoint into the layout transformers 5 saves a from-config model in (no vision_model)."""
    path = folder / "model.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = {k.replace("vision_tower.vision_model.", "vision_tower."): v for k, v in load_file(path).items()}
    save_file(tensors, str(path), metadata=metadata)


def logits(model_dir, samples, adapter=None) -> torch.Tensor:
    loaded = load_model(model_dir, adapter=adapter)
    batch = VlmCollator(loaded.processor, loaded.family)(samples)
    with torch.no_grad():
        return loaded.model(**batch).logits


def test_tiny_llava_is_saved_in_the_layout_vllm_loads(tiny_model):
    keys = saved_keys(tiny_model("llava"))
    assert [k for k in keys if not VLLM_LLAVA_KEY.match(k)] == []
    assert any(k.startswith("vision_tower.vision_model.encoder.layers.") for k in keys)
    model, info = AutoModelForImageTextToText.from_pretrained(tiny_model("llava"), output_loading_info=True)
    assert (info["missing_keys"], info["unexpected_keys"]) == (set(), set())


def test_released_layout_loads_in_transformers_to_the_same_weights_sharded_and_idempotent(tiny_model, tmp_path):
    from vlmkit.models.interop import INDEX

    model = AutoModelForImageTextToText.from_pretrained(tiny_model("llava"))
    folder = tmp_path / "sharded"
    model.save_pretrained(folder, max_shard_size="300KB")
    for shard in folder.glob("*.safetensors"):  # as transformers writes a from-config LLaVA
        tensors = {k.replace("vision_tower.vision_model.", "vision_tower."): v for k, v in load_file(shard).items()}
        save_file(tensors, str(shard), metadata={"format": "pt"})
    index = json.loads((folder / INDEX).read_text())
    index["weight_map"] = {
        k.replace("vision_tower.vision_model.", "vision_tower."): v for k, v in index["weight_map"].items()
    }
    (folder / INDEX).write_text(json.dumps(index))
    assert len(list(folder.glob("*.safetensors"))) > 1
    assert not any(VLLM_LLAVA_KEY.match(k) for k in saved_keys(folder) if k.startswith("vision_tower."))

    renamed = write_released_layout(folder, get_family("llava"))
    keys = saved_keys(folder)
    assert renamed == sum(k.startswith("vision_tower.") for k in keys) > 0
    assert [k for k in keys if not VLLM_LLAVA_KEY.match(k)] == []
    assert set(json.loads((folder / INDEX).read_text())["weight_map"]) == set(keys)
    assert write_released_layout(folder, get_family("llava")) == 0  # already in that layout

    again, info = AutoModelForImageTextToText.from_pretrained(folder, output_loading_info=True)
    assert (info["missing_keys"], info["unexpected_keys"]) == (set(), set())
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_families_saved_as_vllm_expects_are_left_untouched(tiny_model):
    folder = tiny_model("qwen2_vl")
    before = (folder / "model.safetensors").read_bytes()
    assert write_released_layout(folder, get_family("qwen2_vl")) == 0
    assert (folder / "model.safetensors").read_bytes() == before


def test_llava_export_is_in_vllm_layout_with_the_same_logits_and_a_vllm_loadable_adapter(
    tiny_model, image_data, tmp_path
):
    """A base in transformers' own save layout (as from_config models are saved) trains and exports; the export
    is in vLLM's layout, loads in transformers with no missing keys and computes what adapter-on-base computes."""
    base = tmp_path / "base"
    model = AutoModelForImageTextToText.from_pretrained(tiny_model("llava"))
    model.save_pretrained(base)
    AutoProcessor.from_pretrained(tiny_model("llava")).save_pretrained(base)
    to_transformers_layout(base)
    assert any(k.startswith("vision_tower.embeddings.") for k in saved_keys(base))

    config = write_config(
        tmp_path / "exp.yaml",
        base_config(base, image_data, tmp_path / "unused", optim={"lr": 3e-2}, train={"batch_size": 4}),
    )
    run_dir = tmp_path / "run"
    main(["train", str(config), "train.max_steps=4", "--out", str(run_dir)])
    out = tmp_path / "merged"
    main(["export", str(run_dir), "--out", str(out)])

    keys = saved_keys(out)
    assert [k for k in keys if not VLLM_LLAVA_KEY.match(k)] == []
    _, info = AutoModelForImageTextToText.from_pretrained(out, output_loading_info=True)
    assert (info["missing_keys"], info["unexpected_keys"]) == (set(), set())
    samples = read_samples(image_data)[:3]
    merged, reference = logits(out, samples), logits(base, samples, adapter=run_dir / "adapter")
    assert (merged - reference).abs().max().item() < 1e-4
    assert (merged - logits(base, samples)).abs().max().item() > 1e-3  # the adapter changed the model

    adapter = run_dir / "adapter"
    modules = adapter_modules(adapter)
    assert modules and all(m.startswith("model.language_model.layers.") for m in modules)
    assert {m.rsplit(".", 1)[-1] for m in modules} == set(LM_LINEAR)
    assert vllm_lora_problems(adapter, get_family("llava")) == []


def test_adapters_vllm_cannot_serve_are_named_with_the_reason(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model

    loaded = load_model(tiny_model("qwen2_vl"))
    config = LoraConfig(
        r=4,
        target_modules=r".*(language_model\.layers\.0\.self_attn\.q_proj|visual\.blocks\.0\.attn\.qkv)",
        modules_to_save=["model.visual.merger"],
    )
    get_peft_model(loaded.model, config).save_pretrained(tmp_path / "adapter")

    assert "model.visual.blocks.0.attn.qkv" in adapter_modules(tmp_path / "adapter")
    problems = vllm_lora_problems(tmp_path / "adapter", get_family("qwen2_vl"))
    assert len(problems) == 2, problems
    assert "model.visual.merger fully (modules_to_save)" in problems[0]
    assert "model.visual.blocks.0.attn.qkv" in problems[1] and "language_model.layers" not in problems[1]


@pytest.mark.parametrize("family", ["qwen2_vl", "llava"])
def test_default_lora_targets_are_the_language_model_linears_vllm_maps(family, tiny_model, tmp_path):
    """vlmkit's default target regex, applied by PEFT to the real model, adapts exactly the language model's
    attention and MLP projections (what vLLM's LoRA layers wrap) and nothing in the vision tower or projector."""
    from peft import LoraConfig, get_peft_model

    loaded = load_model(tiny_model(family))
    adapter = loaded.family
    get_peft_model(loaded.model, LoraConfig(r=4, target_modules=adapter.lora_target_regex())).save_pretrained(
        tmp_path / "adapter"
    )
    modules = adapter_modules(tmp_path / "adapter")
    assert len(modules) == 2 * len(LM_LINEAR)  # 2 layers
    assert vllm_lora_problems(tmp_path / "adapter", adapter) == []
