"""Logits at labelled positions only give the model's own loss and the same gradients."""

from __future__ import annotations

import pytest
import torch

from vlmkit.data.collate import VlmCollator
from vlmkit.data.schema import read_samples
from vlmkit.models.loading import load_model
from vlmkit.train.loss import answer_only_loss, supports_answer_only_logits


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl", "llava", "smolvlm"])
def test_answer_only_loss_equals_the_full_loss(family, tiny_model, image_data):
    from peft import LoraConfig, get_peft_model

    loaded = load_model(tiny_model(family))
    torch.manual_seed(0)
    model = get_peft_model(
        loaded.model, LoraConfig(r=4, target_modules=loaded.family.lora_target_regex(), init_lora_weights=False)
    )
    assert supports_answer_only_logits(model)
    batch = VlmCollator(loaded.processor, loaded.family)(read_samples(image_data)[:3])

    reference = model(**batch).loss
    reference.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()

    loss, outputs = answer_only_loss(model, batch)
    loss.backward()
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert outputs.logits.shape[0] == labelled < batch["input_ids"].numel() // 4  # a small share of positions
    assert torch.allclose(loss, reference, atol=1e-6)
    assert all(torch.allclose(p.grad, expected[n], atol=1e-6) for n, p in model.named_parameters() if p.requires_grad)

    scaled, _ = answer_only_loss(model, batch, num_items_in_batch=2 * labelled)
    assert torch.allclose(scaled, reference / 2, atol=1e-6)


def test_true_mean_is_reported_while_the_gradient_keeps_the_expected_normalisation():
    from vlmkit.train.loss import report_true_mean

    w = torch.tensor(2.0, requires_grad=True)
    summed = w * 3.0  # a batch whose token losses sum to 6 over 3 tokens
    loss = report_true_mean(summed / 6.0, expected=6.0, actual=3.0)
    loss.backward()
    assert loss.item() == pytest.approx(2.0)  # 6 / 3: the batch's real token mean
    assert w.grad.item() == pytest.approx(3.0 / 6.0)  # d(sum / expected) / dw


def test_lengths_and_grouped_order(tiny_model, image_data):
    from vlmkit.train.data import GroupedByLengthSampler, estimate_lengths

    loaded = load_model(tiny_model("qwen2_vl"))
    collator = VlmCollator(loaded.processor, loaded.family)
    samples = read_samples(image_data)
    lengths = estimate_lengths(samples, collator)
    batch = collator(samples)
    labelled = (batch["labels"] != -100).sum(dim=1).tolist()
    real = batch["attention_mask"].sum(dim=1).tolist()
    assert all(abs(a - b) <= 1 for a, b in zip(lengths.answer, labelled))
    assert all(abs(t - r) <= 2 for t, r in zip(lengths.total, real))  # media tokens estimated from the header

    key = [int(n) for n in torch.randint(10, 500, (64,), generator=torch.Generator().manual_seed(0))]
    sampler = GroupedByLengthSampler(key, group_size=4, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(64)) and order == list(sampler)  # a permutation, reproducible

    def padding(indices):
        batches = [[key[i] for i in indices[j : j + 4]] for j in range(0, 64, 4)]
        return sum(max(b) * len(b) - sum(b) for b in batches)

    assert padding(order) < padding(torch.randperm(64).tolist()) / 2  # similar lengths share a batch
    sampler.set_epoch(1)
    assert list(sampler) != order


def test_the_flop_count_walks_the_model_once_per_run_not_once_per_step(tmp_path, image_data, tiny_model, monkeypatch):
    """Trainer.floating_point_ops counted the model's parameters on every step (every module and parameter
    walked); the count is now taken once and total_flos stays 6 x parameters x input tokens."""
    from train_helpers import base_config
    from transformers import PreTrainedModel

    from vlmkit.config import config_from_dict
    from vlmkit.train import train

    counted = []
    original = PreTrainedModel.num_parameters

    def counting(self, only_trainable=False, exclude_embeddings=False):
        n = original(self, only_trainable=only_trainable, exclude_embeddings=exclude_embeddings)
        if exclude_embeddings and not only_trainable:
            counted.append(n)
        return n

    monkeypatch.setattr(PreTrainedModel, "num_parameters", counting)
    config = config_from_dict(base_config(tiny_model("qwen2_vl"), image_data, tmp_path / "run"))
    result = train(config, progress=False)
    assert result.global_step == 4 and len(counted) == 1
    total_flos = result.log_history[-1]["total_flos"]
    assert total_flos > 0 and total_flos % (6 * counted[0]) == 0
