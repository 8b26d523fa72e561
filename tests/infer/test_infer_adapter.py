"""A LoRA adapter changes the answers, and the merged export of base + adapter gives the same answers."""

from __future__ import annotations

import pytest
from families import FAMILIES
from infer_helpers import mixed_batch

from vlmkit.errors import VlmkitError
from vlmkit.infer import GenerationParams, load_engine

GREEDY = GenerationParams(max_new_tokens=12)


def make_adapter_and_merge(base, adapter_dir, merged_dir, family_name):
    """A LoRA adapter on the language model with random (non-zero) B weights, and its merged checkpoint."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmkit.models.registry import get_family

    family = get_family(family_name)
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(str(base), dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=32, target_modules=family.lora_target_regex(), init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(adapter_dir)  # init_lora_weights=False: B is random, not 0

    fresh = AutoModelForImageTextToText.from_pretrained(str(base), dtype=torch.float32)
    merged = PeftModel.from_pretrained(fresh, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(merged_dir)
    AutoProcessor.from_pretrained(str(base)).save_pretrained(merged_dir)


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_changes_answers_and_merged_export_reproduces_them(tiny_model, images, tmp_path, family):
    base = tiny_model(family)
    make_adapter_and_merge(base, tmp_path / "adapter", tmp_path / "merged", family)
    samples = mixed_batch(images)

    plain = [r.text for r in load_engine(str(base)).generate(samples, GREEDY)]
    adapted_engine = load_engine(str(base), adapter=str(tmp_path / "adapter"))
    adapted = adapted_engine.generate(samples, GREEDY)
    merged = load_engine(str(tmp_path / "merged")).generate(samples, GREEDY)

    assert all(r.ok for r in adapted)
    assert [r.text for r in adapted] != plain
    assert [r.text for r in merged] == [r.text for r in adapted]
    assert adapted_engine.info()["adapter"] == str(tmp_path / "adapter")
    # streaming goes through the adapter too
    assert adapted_engine.stream(samples[0], GREEDY).text() == adapted[0].text


def test_a_folder_that_is_not_an_adapter_is_refused(tiny_model, tmp_path):
    with pytest.raises(VlmkitError, match="not a LoRA adapter folder"):
        load_engine(str(tiny_model("qwen2_vl")), adapter=str(tmp_path))


def test_unknown_backend_is_refused(tiny_model):
    with pytest.raises(VlmkitError, match="unknown inference backend 'vllm2'"):
        load_engine(str(tiny_model("qwen2_vl")), backend="vllm2")
